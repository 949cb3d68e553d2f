#!/usr/bin/env python3
"""Write the `make bench` dataset: TSV files, the SQL that bulk-loads them, and the
sidecar file the load generator (bench/announce.lua) reads.

    bench/dataset.py --dir DIR [--users N] [--torrents M] [--seed S]

Files written in DIR:
    users.tsv, torrents.tsv, clients.tsv, groups_anime.tsv, groups_music.tsv,
    group_freeleech.tsv   rows for LOAD DATA LOCAL INFILE
    load.sql              loads them (run it after database/schema.sql, with
                          `mariadb --local-infile=1 <db>`)
    dataset.txt           the sidecar (format below; --sidecar PATH puts it elsewhere)

No database access here: bench/run.sh feeds load.sql to the mariadb client.
The same seed gives the same rows (passkeys, info hashes, groups) every time.

Rows: users 1..N (32-char alphanumeric passkeys, Enabled '1', multipliers 1);
torrents 1..M (random 20-byte info_hash, Status 0, groups of 1-5 torrents, about
3 on average, 80 % anime / 20 % music by group, Snatched < 512); approved
clients; global_freeleech 0; about 1 % of groups with a freeleech row.

Sidecar (`dataset.txt`), plain text, one item per line:
    chihaya-bench-dataset 1
    created=<unix time> seed=<S> users=<N> torrents=<M> clients=<K>
    [clients]       then K lines: an 8-character peer_id prefix of an approved client
    [users]         then N lines: the passkey of user 1, 2, ... N
    [torrents]      then M lines: the info_hash (40 hex digits) of torrent 1, 2, ... M
"""

import argparse
import os
import random
import string
import sys
import time

# approved_clients rows: (prefix stored in the table, archived, peer_id prefix the
# load generator uses for it, or None for clients it must not use).
CLIENTS = [
    ("-qB", 0, "-qB5020-"),  # qBittorrent 5.0.2
    ("-TR", 0, "-TR4060-"),  # Transmission 4.0.6
    ("-DE", 0, "-DE2110-"),  # Deluge 2.1.1
    ("-lt", 0, "-lt0E10-"),  # libtorrent (rakshasa) 0.14.1
    ("-UT", 0, "-UT360S-"),  # uTorrent 3.6.0
    ("-AZ", 1, None),  # archived: refused
    ("-BC", 1, None),  # archived: refused
]

ALNUM = string.ascii_letters + string.digits
ANIME_SHARE = 0.80
FREELEECH_SHARE = 0.01
CHUNK = 100_000  # rows per write


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, help="output directory (created)")
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--torrents", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sidecar", help="where to write the sidecar (default DIR/dataset.txt)")
    args = ap.parse_args()
    if args.users < 1 or args.torrents < 1:
        ap.error("--users and --torrents must be at least 1")
    return args


def write_lines(f, lines):
    """Write an iterable of lines (without newline) to f, in chunks."""
    buf = []
    for line in lines:
        buf.append(line)
        if len(buf) >= CHUNK:
            f.write("\n".join(buf) + "\n")
            buf.clear()
    if buf:
        f.write("\n".join(buf) + "\n")


def write_rows(path, rows):
    """Write an iterable of TSV lines to a new file."""
    with open(path, "w", encoding="ascii", newline="\n") as f:
        write_lines(f, rows)


def make_users(rng, n):
    """Passkeys of users 1..n, distinct."""
    seen = set()
    keys = []
    while len(keys) < n:
        key = "".join(rng.choices(ALNUM, k=32))
        if key not in seen:
            seen.add(key)
            keys.append(key)
    return keys


def make_torrents(rng, m):
    """(group id, type, info_hash hex, snatched) of torrents 1..m, and the groups."""
    raw = rng.randbytes(20 * m).hex()
    hashes = [raw[i * 40 : (i + 1) * 40] for i in range(m)]
    if len(set(hashes)) != m:  # 2^-100 territory, but cheap to check
        sys.exit("dataset: duplicate info_hash, try another --seed")
    torrents = []
    groups = []  # (group id, type)
    left_in_group = 0
    group_type = "anime"
    for i in range(m):
        if left_in_group == 0:
            left_in_group = rng.randint(1, 5)
            group_type = "anime" if rng.random() < ANIME_SHARE else "music"
            groups.append((len(groups) + 1, group_type))
        left_in_group -= 1
        # Skewed towards few snatches, always < 512.
        snatched = int(512 * rng.random() ** 3)
        torrents.append((len(groups), group_type, hashes[i], snatched))
    return torrents, groups


def sql_path(path):
    return "'" + os.path.abspath(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def load_sql(d):
    """LOAD DATA statements for the files in d (tables as in database/schema.sql)."""

    def load(name, table, columns, extra=""):
        return (
            f"LOAD DATA LOCAL INFILE {sql_path(os.path.join(d, name))} INTO TABLE `{table}`\n"
            f"  FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n'\n"
            f"  ({columns}){extra};\n"
        )

    return "".join(
        [
            "SET SESSION unique_checks = 0, foreign_key_checks = 0;\n",
            load("clients.tsv", "approved_clients", "id, peer_id, archived"),
            load("users.tsv", "users_main", "ID, torrent_pass, Enabled"),
            load(
                "torrents.tsv",
                "torrents",
                "ID, GroupID, TorrentType, @hash, Snatched",
                " SET info_hash = UNHEX(@hash)",
            ),
            load("groups_anime.tsv", "torrents_group", "ID, `Time`"),
            load("groups_music.tsv", "torrents_group2", "ID, `Time`"),
            load(
                "group_freeleech.tsv",
                "torrent_group_freeleech",
                "GroupID, Type, DownMultiplier, UpMultiplier",
            ),
            "INSERT INTO mod_core (mod_option, mod_setting) VALUES ('global_freeleech', 0)\n"
            "  ON DUPLICATE KEY UPDATE mod_setting = 0;\n",
        ]
    )


def main():
    args = parse_args()
    started = time.monotonic()
    d = args.dir
    os.makedirs(d, exist_ok=True)
    rng = random.Random(args.seed)
    created = int(time.time())

    passkeys = make_users(rng, args.users)
    torrents, groups = make_torrents(rng, args.torrents)
    group_time = created - 86400

    write_rows(
        os.path.join(d, "clients.tsv"),
        (f"{i}\t{prefix}\t{archived}" for i, (prefix, archived, _) in enumerate(CLIENTS, 1)),
    )
    write_rows(
        os.path.join(d, "users.tsv"),
        (f"{i}\t{key}\t1" for i, key in enumerate(passkeys, 1)),
    )
    write_rows(
        os.path.join(d, "torrents.tsv"),
        (f"{i}\t{g}\t{t}\t{h}\t{s}" for i, (g, t, h, s) in enumerate(torrents, 1)),
    )
    write_rows(
        os.path.join(d, "groups_anime.tsv"),
        (f"{g}\t{group_time}" for g, t in groups if t == "anime"),
    )
    write_rows(
        os.path.join(d, "groups_music.tsv"),
        (f"{g}\t{group_time}" for g, t in groups if t == "music"),
    )
    # Freeleech (download free) for most picked groups, double upload for the rest.
    picked = rng.sample(groups, max(1, round(len(groups) * FREELEECH_SHARE)))
    write_rows(
        os.path.join(d, "group_freeleech.tsv"),
        (
            f"{g}\t{t}\t0\t1" if rng.random() < 0.75 else f"{g}\t{t}\t1\t2"
            for g, t in sorted(picked)
        ),
    )
    with open(os.path.join(d, "load.sql"), "w", encoding="utf-8") as f:
        f.write(load_sql(d))

    usable = [pid for _, archived, pid in CLIENTS if not archived]
    sidecar = args.sidecar or os.path.join(d, "dataset.txt")
    with open(sidecar, "w", encoding="ascii", newline="\n") as f:
        f.write("chihaya-bench-dataset 1\n")
        f.write(
            f"created={created} seed={args.seed} users={args.users} "
            f"torrents={args.torrents} clients={len(usable)}\n"
        )
        f.write("[clients]\n" + "\n".join(usable) + "\n")
        f.write("[users]\n")
        write_lines(f, passkeys)
        f.write("[torrents]\n")
        write_lines(f, (h for _, _, h, _ in torrents))

    print(
        f"dataset: {args.users} users, {args.torrents} torrents, {len(groups)} groups "
        f"({len(picked)} with freeleech), {len(CLIENTS)} clients, seed {args.seed}, "
        f"written to {d} in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()

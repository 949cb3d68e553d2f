//! The configuration's tests: defaults, every key's validation, the duplicate-key
//! rule, `DB_DSN` and addresses.

use super::*;

fn ok(json: &str) -> Loaded {
    Config::parse_json(json).unwrap()
}

fn err(json: &str) -> String {
    Config::parse_json(json).unwrap_err().to_string()
}

fn dsn(dsn: &str) -> Loaded {
    Config::from_parts(None, Some(dsn)).unwrap()
}

fn dsn_err(dsn: &str) -> String {
    Config::from_parts(None, Some(dsn)).unwrap_err().to_string()
}

fn db(username: &str, password: &str, database: &str, endpoint: DbEndpoint) -> DatabaseConfig {
    DatabaseConfig {
        username: username.to_owned(),
        password: password.to_owned(),
        database: database.to_owned(),
        endpoint,
        ..DatabaseConfig::default()
    }
}

/// Built without the parser under test.
fn host(text: &str) -> Host {
    text.parse()
        .map_or_else(|_| Host::Name(text.to_owned()), Host::Ip)
}

fn tcp(text: &str, port: u16) -> DbEndpoint {
    DbEndpoint::Tcp(HostPort {
        host: host(text),
        port,
    })
}

fn unix(path: &str) -> DbEndpoint {
    DbEndpoint::Unix(path.into())
}

fn listen(text: &str, port: u16) -> ListenAddr {
    ListenAddr::At(HostPort {
        host: host(text),
        port,
    })
}

#[test]
fn defaults_are_the_spec_table() {
    let expected = Config {
        database: db("chihaya", "", "chihaya", tcp("127.0.0.1", 3306)),
        channels: ChannelsConfig {
            torrent: 5000,
            user: 5000,
            transfer_history: 5000,
            transfer_ips: 5000,
            snatch: 25,
        },
        intervals: IntervalsConfig {
            announce: 1800,
            min_announce: 900,
            peer_inactivity: 3900,
            announce_drift: 300,
            scrape: 900,
            database_reload: 45,
            database_reload_with_push: 600,
            database_serialize: 68,
            purge_inactive_peers: 120,
            flush: 3,
        },
        limits: LimitsConfig {
            user_peers_per_torrent: 10,
            user_requests_per_second: 50,
            user_request_burst: 30_000,
            max_transfer_rate: 10_737_418_240,
        },
        journal: JournalConfig {
            fsync_interval_ms: 1000,
        },
        addr: ListenAddr::Any(34000),
        admin_token: String::new(),
        push_token: String::new(),
        instance: String::new(),
        proxy: String::new(),
        record: false,
        scrape: true,
        log_flushes: true,
        strict_port: false,
        flush_groups: false,
        numwant: 25,
        max_numwant: 50,
    };
    assert_eq!(expected.database.deadlock_pause, 1);
    assert_eq!(expected.database.deadlock_retries, 5);
    assert_eq!(Config::default(), expected);
    let empty = Loaded {
        config: expected,
        warnings: vec![],
    };
    assert_eq!(ok("{}"), empty);
    assert_eq!(ok(" \n{ }\n"), empty);
    assert_eq!(Config::from_parts(None, None).unwrap(), empty);
}

#[test]
fn the_example_config_is_the_defaults() {
    let example = include_str!("../../config.example.json");
    assert_eq!(ok(example).config, Config::default());
    assert_eq!(ok(example).warnings, Vec::<String>::new());
}

#[test]
fn every_key_can_be_set() {
    let json = r#"{
        "database": {"username": "u", "password": "p", "database": "d", "proto": "unix",
                     "addr": "/run/db.sock", "deadlock_pause": 0, "deadlock_retries": 9},
        "channels": {"torrent": 1, "user": 2, "transfer_history": 3, "transfer_ips": 4,
                     "snatch": 5},
        "intervals": {"announce": 11, "min_announce": 12, "peer_inactivity": 13,
                      "announce_drift": 0, "scrape": 15, "database_reload": 16,
                      "database_reload_with_push": 17,
                      "database_serialize": 17, "purge_inactive_peers": 18, "flush": 19},
        "limits": {"user_peers_per_torrent": 1000, "user_requests_per_second": 7,
                   "user_request_burst": 8, "max_transfer_rate": 9223372036854775807},
        "journal": {"fsync_interval_ms": 0},
        "addr": "127.0.0.1:8080", "admin_token": "t0k", "push_token": "p5h", "instance": "eu-2", "proxy": "X-Real-IP",
        "record": true, "scrape": false, "log_flushes": false, "strict_port": true,
        "flush_groups": true, "numwant": 0, "max_numwant": 65535
    }"#;
    let expected = Config {
        database: DatabaseConfig {
            deadlock_pause: 0,
            deadlock_retries: 9,
            ..db("u", "p", "d", unix("/run/db.sock"))
        },
        channels: ChannelsConfig {
            torrent: 1,
            user: 2,
            transfer_history: 3,
            transfer_ips: 4,
            snatch: 5,
        },
        intervals: IntervalsConfig {
            announce: 11,
            min_announce: 12,
            peer_inactivity: 13,
            announce_drift: 0,
            scrape: 15,
            database_reload: 16,
            database_reload_with_push: 17,
            database_serialize: 17,
            purge_inactive_peers: 18,
            flush: 19,
        },
        limits: LimitsConfig {
            user_peers_per_torrent: 1000,
            user_requests_per_second: 7,
            user_request_burst: 8,
            max_transfer_rate: 9_223_372_036_854_775_807,
        },
        journal: JournalConfig {
            fsync_interval_ms: 0,
        },
        addr: listen("127.0.0.1", 8080),
        admin_token: "t0k".to_owned(),
        push_token: "p5h".to_owned(),
        instance: "eu-2".to_owned(),
        proxy: "X-Real-IP".to_owned(),
        record: true,
        scrape: false,
        log_flushes: false,
        strict_port: true,
        flush_groups: true,
        numwant: 0,
        max_numwant: 65535,
    };
    assert_eq!(
        ok(json),
        Loaded {
            config: expected,
            warnings: vec![]
        }
    );
    assert_eq!(
        ok(r#"{"database": {"proto": "tcp"}}"#).config,
        Config::default()
    );
}

#[test]
fn wrong_types() {
    #[rustfmt::skip]
    let cases = [
        (r#"{"addr": 5}"#, "config: addr: must be a string (got 5)"),
        (r#"{"proxy": null}"#, "config: proxy: must be a string (got null)"),
        (r#"{"instance": "eu/2"}"#, r#"config: instance: must be at most 15 letters, digits, '-' or '_' (got "eu/2")"#),
        (r#"{"instance": "abcdefghijklmnop"}"#, r#"config: instance: must be at most 15 letters, digits, '-' or '_' (got "abcdefghijklmnop")"#),
        (r#"{"database": {"password": ["a"]}}"#, r#"config: database.password: must be a string (got ["a"])"#),
        (r#"{"record": "yes"}"#, r#"config: record: must be true or false (got "yes")"#),
        (r#"{"scrape": 1}"#, "config: scrape: must be true or false (got 1)"),
        (r#"{"database": {"proto": "udp"}}"#, r#"config: database.proto: must be "tcp" or "unix" (got "udp")"#),
        (r#"{"database": {"proto": "TCP"}}"#, r#"config: database.proto: must be "tcp" or "unix" (got "TCP")"#),
        (r#"{"intervals": []}"#, "config: intervals: must be an object (got [])"),
        (r#"{"database": "x"}"#, r#"config: database: must be an object (got "x")"#),
        (r#"{"channels": null}"#, "config: channels: must be an object (got null)"),
        (r#"{"addr": {"a": "\"q\""}}"#, r#"config: addr: must be a string (got {"a":"\"q\""})"#),
    ];
    for (json, message) in cases {
        assert_eq!(err(json), message, "{json}");
    }
}

#[test]
fn empty_strings() {
    assert_eq!(err(r#"{"addr": ""}"#), "config: addr: must not be empty");
    assert_eq!(
        err(r#"{"database": {"addr": ""}}"#),
        "config: database.addr: must not be empty"
    );
    let loaded = ok(r#"{"admin_token": "", "proxy": "", "database": {"password": ""}}"#);
    assert_eq!(loaded.config, Config::default());
}

#[test]
fn int_keys_take_only_integer_literals() {
    #[rustfmt::skip]
    let cases = [
        ("5.0", "5.0"),
        ("5e0", "5.0"),
        ("\"5\"", "\"5\""),
        ("null", "null"),
        ("true", "true"),
        ("99999999999999999999", "1e+20"),
    ];
    for (literal, shown) in cases {
        assert_eq!(
            err(&format!(r#"{{"channels": {{"snatch": {literal}}}}}"#)),
            format!("config: channels.snatch: must be an integer >= 1 (got {shown})"),
        );
    }
    assert_eq!(
        err(r#"{"numwant": -99999999999999999999}"#),
        "config: numwant: must be an integer between 0 and 65535 (got -1e+20)"
    );
    assert_eq!(
        err(r#"{"intervals": {"flush": 18446744073709551615}}"#),
        "config: intervals.flush: must be an integer between 1 and 2147483647 (got 18446744073709551615)"
    );
}

#[test]
fn range_bounds() {
    #[rustfmt::skip]
    let cases = [
        (r#"{"database": {"deadlock_pause": -1}}"#, "config: database.deadlock_pause: must be an integer between 0 and 3600 (got -1)"),
        (r#"{"database": {"deadlock_pause": 3601}}"#, "config: database.deadlock_pause: must be an integer between 0 and 3600 (got 3601)"),
        (r#"{"database": {"deadlock_pause": 5000}}"#, "config: database.deadlock_pause: must be an integer between 0 and 3600 (got 5000)"),
        (r#"{"database": {"deadlock_retries": 0}}"#, "config: database.deadlock_retries: must be an integer between 1 and 1000 (got 0)"),
        (r#"{"database": {"deadlock_retries": 1001}}"#, "config: database.deadlock_retries: must be an integer between 1 and 1000 (got 1001)"),
        (r#"{"numwant": -1}"#, "config: numwant: must be an integer between 0 and 65535 (got -1)"),
        (r#"{"max_numwant": 65536}"#, "config: max_numwant: must be an integer between 0 and 65535 (got 65536)"),
        (r#"{"channels": {"snatch": 0}}"#, "config: channels.snatch: must be an integer >= 1 (got 0)"),
        (r#"{"intervals": {"announce_drift": -1}}"#, "config: intervals.announce_drift: must be an integer >= 0 (got -1)"),
        (r#"{"intervals": {"flush": 2147483648}}"#, "config: intervals.flush: must be an integer between 1 and 2147483647 (got 2147483648)"),
        (r#"{"limits": {"user_peers_per_torrent": 1001}}"#, "config: limits.user_peers_per_torrent: must be an integer between 1 and 1000 (got 1001)"),
        (r#"{"limits": {"user_peers_per_torrent": 0}}"#, "config: limits.user_peers_per_torrent: must be an integer between 1 and 1000 (got 0)"),
        (r#"{"limits": {"user_requests_per_second": -1}}"#, "config: limits.user_requests_per_second: must be an integer between 0 and 1000000 (got -1)"),
        (r#"{"limits": {"user_request_burst": 1.5}}"#, "config: limits.user_request_burst: must be an integer >= 0 (got 1.5)"),
        (r#"{"limits": {"max_transfer_rate": 9223372036854775808}}"#, "config: limits.max_transfer_rate: must be an integer between 0 and 9223372036854775807 (got 9223372036854775808)"),
        (r#"{"limits": 5}"#, "config: limits: must be an object (got 5)"),
        (r#"{"journal": {"fsync_interval_ms": 60001}}"#, "config: journal.fsync_interval_ms: must be an integer between 0 and 60000 (got 60001)"),
    ];
    for (json, message) in cases {
        assert_eq!(err(json), message, "{json}");
    }
    let db = ok(r#"{"database": {"deadlock_pause": 3600, "deadlock_retries": 1000}}"#)
        .config
        .database;
    assert_eq!((db.deadlock_pause, db.deadlock_retries), (3600, 1000));
    let db = ok(r#"{"database": {"deadlock_pause": 0, "deadlock_retries": 1}}"#)
        .config
        .database;
    assert_eq!((db.deadlock_pause, db.deadlock_retries), (0, 1));
    let c = ok(r#"{"numwant": 65535, "max_numwant": 0}"#).config;
    assert_eq!((c.numwant, c.max_numwant), (65535, 0));
    let c = ok(
        r#"{"channels": {"snatch": 1}, "intervals": {"flush": 2147483647, "announce_drift": 0}}"#,
    )
    .config;
    assert_eq!(
        (
            c.channels.snatch,
            c.intervals.flush,
            c.intervals.announce_drift
        ),
        (1, 2147483647, 0)
    );
}

#[test]
fn duplicate_keys() {
    #[rustfmt::skip]
    let cases = [
        (r#"{"addr": ":1", "addr": ":2"}"#, "config: addr: duplicate key"),
        (r#"{"database": {"addr": "a:1", "addr": "b:1"}}"#, "config: database.addr: duplicate key"),
        (r#"{"intervals": {}, "intervals": {}}"#, "config: intervals: duplicate key"),
        (r#"{"foo": 1, "foo": 2}"#, "config: foo: duplicate key"),
        (r#"{"foo": {"a": 1, "a": 1}}"#, "config: foo.a: duplicate key"),
        (r#"{"channels": {"x": [{}, {"b": {"c": 1, "c": 2}}]}}"#, "config: channels.x[1].b.c: duplicate key"),
    ];
    for (json, message) in cases {
        assert_eq!(err(json), message, "{json}");
    }
}

#[test]
fn first_error_in_document_order() {
    assert_eq!(
        err(r#"{"record": 1, "addr": 2}"#),
        "config: record: must be true or false (got 1)"
    );
    assert_eq!(
        err(r#"{"addr": 2, "record": 1}"#),
        "config: addr: must be a string (got 2)"
    );
    assert_eq!(
        err(r#"{"scrape": 1, "scrape": true}"#),
        "config: scrape: must be true or false (got 1)"
    );
}

#[test]
fn unknown_keys_warn_and_validation_goes_on() {
    let loaded = ok(
        r#"{"foo": 1, "database": {"hostname": "x", "username": "me"},
                        "channels": {"peers": {}}, "intervals": {"x": null}, "addr": ":1"}"#,
    );
    assert_eq!(
        loaded.warnings,
        [
            "config: foo: unknown key ignored",
            "config: database.hostname: unknown key ignored",
            "config: channels.peers: unknown key ignored",
            "config: intervals.x: unknown key ignored",
        ]
    );
    assert_eq!(loaded.config.database.username, "me");
    assert_eq!(loaded.config.addr, ListenAddr::Any(1));
    assert_eq!(
        err(r#"{"foo": 1, "addr": 5}"#),
        "config: addr: must be a string (got 5)"
    );
}

#[test]
fn deprecated_numwant_aliases() {
    let loaded = ok(r#"{"intervals": {"numwant": 7, "max_numwant": 8}}"#);
    assert_eq!((loaded.config.numwant, loaded.config.max_numwant), (7, 8));
    assert_eq!(
        loaded.warnings,
        [
            "config: intervals.numwant: deprecated, use numwant",
            "config: intervals.max_numwant: deprecated, use max_numwant",
        ]
    );
    // The top-level key wins whichever comes first.
    for json in [
        r#"{"numwant": 1, "intervals": {"numwant": 7, "max_numwant": 8}, "max_numwant": 2}"#,
        r#"{"intervals": {"numwant": 7, "max_numwant": 8}, "numwant": 1, "max_numwant": 2}"#,
    ] {
        let loaded = ok(json);
        assert_eq!((loaded.config.numwant, loaded.config.max_numwant), (1, 2));
        assert_eq!(loaded.warnings.len(), 2);
    }
    assert_eq!(
        err(r#"{"numwant": 1, "intervals": {"numwant": 70000}}"#),
        "config: intervals.numwant: must be an integer between 0 and 65535 (got 70000)"
    );
    assert_eq!(
        err(r#"{"intervals": {"max_numwant": "9"}}"#),
        r#"config: intervals.max_numwant: must be an integer between 0 and 65535 (got "9")"#
    );
}

#[test]
fn invalid_json() {
    #[rustfmt::skip]
    let cases = [
        (r#"{"addr": }"#, "config: <config>: invalid JSON at line 1 column 10: expected value"),
        ("{\n\"addr\": \":1\",\n}", "config: <config>: invalid JSON at line 3 column 1: trailing comma"),
        ("", "config: <config>: invalid JSON at line 1 column 0: EOF while parsing a value"),
        ("{} {}", "config: <config>: invalid JSON at line 1 column 4: trailing characters"),
        ("[]", "config: <config>: must be an object (got [])"),
        ("null", "config: <config>: must be an object (got null)"),
    ];
    for (json, message) in cases {
        assert_eq!(err(json), message, "{json}");
    }
}

#[test]
fn load_reports_the_path() {
    let dir = std::env::temp_dir().join(format!("chihaya-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.json");
    std::fs::write(&file, "{").unwrap();
    let e = Config::load(&file).unwrap_err();
    assert_eq!(e.key, file.display().to_string());
    assert!(
        e.problem.starts_with("invalid JSON at line 1 column 1: "),
        "{e}"
    );
    // A directory is a read error other than "not found".
    assert_eq!(
        Config::load(&dir).unwrap_err().key,
        dir.display().to_string()
    );

    let missing = dir.join("missing.json");
    let loaded = Config::load(&missing).unwrap();
    let expected = format!(
        "Unable to open config file {}, defaults will be used! (",
        missing.display()
    );
    assert!(
        loaded.warnings[0].starts_with(&expected),
        "{}",
        loaded.warnings[0]
    );
    assert!(loaded.warnings[0].ends_with(')'));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn go_dsn() {
    #[rustfmt::skip]
    let cases = [
        ("chihaya:s3cr:et@tcp(db.example:3307)/tracker", db("chihaya", "s3cr:et", "tracker", tcp("db.example", 3307))),
        ("u:p@ss:w@rd@tcp(h:1)/d", db("u", "p@ss:w@rd", "d", tcp("h", 1))),
        ("u:a/b)c@tcp(h:1)/d", db("u", "a/b)c", "d", tcp("h", 1))),
        ("root@unix(/run/mysqld/mysqld.sock)/chihaya", db("root", "", "chihaya", unix("/run/mysqld/mysqld.sock"))),
        ("root@(10.0.0.1:3308)/db", db("root", "", "db", tcp("10.0.0.1", 3308))),
        ("root@tcp(db.example)/db", db("root", "", "db", tcp("db.example", 3306))),
        ("root:@tcp([::1]:3307)/db", db("root", "", "db", tcp("::1", 3307))),
        ("root@tcp([::1])/db", db("root", "", "db", tcp("::1", 3306))),
    ];
    for (s, expected) in cases {
        let loaded = dsn(s);
        assert_eq!(loaded.config.database, expected, "{s}");
        assert!(loaded.warnings.is_empty());
    }
    let loaded = dsn("u@tcp(h:1)/d?parseTime=true&loc=UTC");
    assert_eq!(loaded.config.database.database, "d");
    assert_eq!(
        loaded.warnings,
        ["config: DB_DSN: parameters ignored (parseTime=true&loc=UTC)"]
    );
    assert!(dsn("u@tcp(h:1)/d?").warnings.is_empty());
}

#[test]
fn url_dsn() {
    #[rustfmt::skip]
    let cases = [
        ("mysql://chihaya:pw@db.example:3307/tracker", db("chihaya", "pw", "tracker", tcp("db.example", 3307))),
        ("mysql://us%65r:p%40ss%3Aw%2Fd@h/d", db("user", "p@ss:w/d", "d", tcp("h", 3306))),
        ("mysql://u:p@ss:x@h:1/d", db("u", "p@ss:x", "d", tcp("h", 1))),
        ("mysql://u@[::1]/d", db("u", "", "d", tcp("::1", 3306))),
        ("mysql://u@[2001:db8::5]:3310/d", db("u", "", "d", tcp("2001:db8::5", 3310))),
        ("MySQL://u@127.0.0.1/d", db("u", "", "d", tcp("127.0.0.1", 3306))),
        ("mysql://u:a+b@h/d", db("u", "a+b", "d", tcp("h", 3306))),
    ];
    for (s, expected) in cases {
        let loaded = dsn(s);
        assert_eq!(loaded.config.database, expected, "{s}");
        assert!(loaded.warnings.is_empty());
    }
    let loaded = dsn("mysql://u@h/d?ssl-mode=REQUIRED");
    assert_eq!(loaded.config.database.endpoint, tcp("h", 3306));
    assert_eq!(
        loaded.warnings,
        ["config: DB_DSN: parameters ignored (ssl-mode=REQUIRED)"]
    );
}

#[test]
fn malformed_dsn() {
    #[rustfmt::skip]
    let cases = [
        ("u@tcp(h:1)", r#"missing "/DB""#),
        ("u@unix(/run/db.sock)", r#"missing "/DB" after "PROTO(ADDR)""#),
        ("tcp(h:1)/d", r#"missing "USER@""#),
        ("u@tcp)/d", r#"missing "(" in "PROTO(ADDR)""#),
        ("u:pw@udp(h:1)/d", r#"unknown protocol "udp" (expected tcp or unix)"#),
        ("@tcp(h:1)/d", "empty user"),
        (":pw@tcp(h:1)/d", "empty user"),
        ("u@tcp(h:1)/", "empty database name"),
        ("u@tcp(h:1)/?x=1", "empty database name"),
        ("u@tcp()/d", "empty address"),
        ("u@tcp(h:x)/d", r#"bad port "x""#),
        ("u@tcp(h:)/d", r#"bad port """#),
        ("u@tcp(h:0)/d", r#"bad port "0""#),
        ("u@tcp(h:65536)/d", r#"bad port "65536""#),
        ("u@tcp(h:+1)/d", r#"bad port "+1""#),
        ("u@tcp(:3306)/d", "missing host"),
        ("u@tcp(::1)/d", r#"bad address "::1" (IPv6 hosts need [brackets])"#),
        ("u@tcp([::1)/d", r#"bad address "[::1""#),
        ("u@tcp([::1]x)/d", r#"bad address "[::1]x""#),
        ("mysql://u@h", r#"missing "/DB""#),
        ("mysql://h/d", r#"missing "USER@""#),
        ("mysql://u@/d", "missing host"),
        ("mysql://u@[]:1/d", "missing host"),
        ("mysql://@h/d", "empty user"),
        ("mysql://u@h/", "empty database name"),
        ("mysql://u@h/a/b", r#"bad database name "a/b""#),
        ("mysql://u@h:x/d", r#"bad port "x""#),
        ("mysql://u%zz@h/d", "bad percent-encoding in user"),
        ("mysql://u:secret%4@h/d", "bad percent-encoding in password"),
        ("mysql://u:%ff@h/d", "bad percent-encoding in password"),
    ];
    for (s, problem) in cases {
        assert_eq!(dsn_err(s), format!("config: DB_DSN: {problem}"), "{s}");
    }
    // The password never shows in a message.
    for s in [
        "u:hunter2@udp(h)/d",
        "u:hunter2@tcp(h:x)/d",
        "mysql://u:hunter2%@h/d",
    ] {
        assert!(!dsn_err(s).contains("hunter2"), "{s}");
    }
}

#[test]
fn dsn_replaces_the_connection_keys_only() {
    let json = r#"{"database": {"username": "a", "password": "b", "database": "c",
                   "proto": "unix", "addr": "/s", "deadlock_pause": 7, "deadlock_retries": 8}}"#;
    let loaded = Config::from_parts(Some(json), Some("u:p@tcp(h:1)/d")).unwrap();
    let expected = DatabaseConfig {
        deadlock_pause: 7,
        deadlock_retries: 8,
        ..db("u", "p", "d", tcp("h", 1))
    };
    assert_eq!(loaded.config.database, expected);
    // An empty DB_DSN counts as unset.
    let loaded = Config::from_parts(Some(json), Some("")).unwrap();
    assert_eq!(loaded.config.database.endpoint, unix("/s"));
    // The file is checked first.
    let e = Config::from_parts(Some(r#"{"addr": 1}"#), Some("bad")).unwrap_err();
    assert_eq!(e.key, "addr");
}

#[test]
fn database_addr_is_checked_at_load() {
    #[rustfmt::skip]
    let cases = [
        ("127.0.0.1:99999", r#"bad port "99999""#),
        ("127.0.0.1:33x6", r#"bad port "33x6""#),
        ("127.0.0.1:0", r#"bad port "0""#),
        ("127.0.0.1:", r#"bad port """#),
        ("127.0.0.1:+3306", r#"bad port "+3306""#),
        ("127.0.0.1:-1", r#"bad port "-1""#),
        ("::1", r#"bad address "::1" (IPv6 hosts need [brackets])"#),
        ("::1:3306", r#"bad address "::1:3306" (IPv6 hosts need [brackets])"#),
        ("[::1]:99999", r#"bad port "99999""#),
        ("[::1", r#"bad address "[::1""#),
        ("[::1]3306", r#"bad address "[::1]3306""#),
        ("[db.example]:3306", r#"bad IPv6 address "[db.example]""#),
        ("[]:3306", "missing host"),
        (":3306", "missing host"),
        ("db example:3306", r#"bad host "db example""#),
        ("/run/mysqld/mysqld.sock", r#"bad host "/run/mysqld/mysqld.sock" (a socket path needs database.proto "unix")"#),
    ];
    for (addr, problem) in cases {
        let json = format!(r#"{{"database": {{"addr": "{addr}"}}}}"#);
        assert_eq!(
            err(&json),
            format!("config: database.addr: {problem}"),
            "{addr}"
        );
    }
    #[rustfmt::skip]
    let good = [
        ("[::1]", tcp("::1", 3306)),
        ("[::1]:3307", tcp("::1", 3307)),
        ("127.0.0.1", tcp("127.0.0.1", 3306)),
        ("127.0.0.1:65535", tcp("127.0.0.1", 65535)),
        ("db.example:1", tcp("db.example", 1)),
        ("mariadb_1", tcp("mariadb_1", 3306)),
    ];
    for (addr, endpoint) in good {
        let json = format!(r#"{{"database": {{"proto": "tcp", "addr": "{addr}"}}}}"#);
        assert_eq!(ok(&json).config.database.endpoint, endpoint, "{addr}");
    }
}

#[test]
fn database_addr_is_read_as_proto_says_wherever_proto_is() {
    // A socket path is taken as it is, even one with a colon, whichever key comes first.
    for json in [
        r#"{"database": {"proto": "unix", "addr": "/run/my:sql/x.sock"}}"#,
        r#"{"database": {"addr": "/run/my:sql/x.sock", "proto": "unix"}}"#,
    ] {
        assert_eq!(
            ok(json).config.database.endpoint,
            unix("/run/my:sql/x.sock"),
            "{json}"
        );
    }
    // The default address is a tcp one.
    assert_eq!(
        err(r#"{"database": {"proto": "unix"}}"#),
        r#"config: database.addr: must be a socket path when database.proto is "unix""#
    );
    // proto tcp after a bad addr still reports the addr.
    assert_eq!(
        err(r#"{"database": {"addr": "h:99999", "proto": "tcp"}}"#),
        r#"config: database.addr: bad port "99999""#
    );
    // DB_DSN replaces both keys, so the file's are not looked at.
    let json = r#"{"database": {"addr": "h:99999"}}"#;
    let loaded = Config::from_parts(Some(json), Some("u@unix(/s)/d")).unwrap();
    assert_eq!(loaded.config.database.endpoint, unix("/s"));
    let json = r#"{"database": {"proto": "unix"}}"#;
    let loaded = Config::from_parts(Some(json), Some("u@tcp(h)/d")).unwrap();
    assert_eq!(loaded.config.database.endpoint, tcp("h", 3306));
}

#[test]
fn dsn_addresses_follow_the_same_rules() {
    for (port, problem) in [("99999", "99999"), ("33x6", "33x6"), ("0", "0"), ("", "")] {
        let expected = format!(r#"config: DB_DSN: bad port "{problem}""#);
        assert_eq!(dsn_err(&format!("u@tcp(127.0.0.1:{port})/d")), expected);
        assert_eq!(dsn_err(&format!("mysql://u@127.0.0.1:{port}/d")), expected);
    }
    #[rustfmt::skip]
    let cases = [
        ("u@tcp([::1]:99999)/d", r#"bad port "99999""#),
        ("mysql://u@::1/d", r#"bad address "::1" (IPv6 hosts need [brackets])"#),
        ("mysql://u@[h]/d", r#"bad IPv6 address "[h]""#),
        ("u@tcp(a b)/d", r#"bad host "a b""#),
    ];
    for (s, problem) in cases {
        assert_eq!(dsn_err(s), format!("config: DB_DSN: {problem}"), "{s}");
    }
    // A unix socket path is not an address.
    assert_eq!(
        dsn("u@unix(/run/a:b.sock)/d").config.database.endpoint,
        unix("/run/a:b.sock")
    );
}

#[test]
fn listen_addr_is_checked_at_load() {
    #[rustfmt::skip]
    let cases = [
        (":99999", r#"bad port "99999""#),
        (":33x6", r#"bad port "33x6""#),
        (":", r#"bad port """#),
        (":+80", r#"bad port "+80""#),
        ("127.0.0.1:", r#"bad port """#),
        ("127.0.0.1", r#"missing port in "127.0.0.1""#),
        ("localhost", r#"missing port in "localhost""#),
        ("[::1]", r#"missing port in "[::1]""#),
        ("::1", r#"bad address "::1" (IPv6 hosts need [brackets])"#),
        ("::1:80", r#"bad address "::1:80" (IPv6 hosts need [brackets])"#),
        ("[::1]:x", r#"bad port "x""#),
        ("[]:80", "missing host"),
        ("[1.2.3.4]:80", r#"bad IPv6 address "[1.2.3.4]""#),
        ("a/b:80", r#"bad host "a/b""#),
    ];
    for (addr, problem) in cases {
        let json = format!(r#"{{"addr": "{addr}"}}"#);
        assert_eq!(err(&json), format!("config: addr: {problem}"), "{addr}");
    }
    #[rustfmt::skip]
    let good = [
        (":0", ListenAddr::Any(0), ":0"),
        (":34000", ListenAddr::Any(34000), ":34000"),
        ("0.0.0.0:80", listen("0.0.0.0", 80), "0.0.0.0:80"),
        ("127.0.0.1:0", listen("127.0.0.1", 0), "127.0.0.1:0"),
        ("[::1]:65535", listen("::1", 65535), "[::1]:65535"),
        ("[::]:80", listen("::", 80), "[::]:80"),
        ("localhost:8080", listen("localhost", 8080), "localhost:8080"),
        ("tracker.example:080", listen("tracker.example", 80), "tracker.example:80"),
    ];
    for (text, addr, shown) in good {
        let json = format!(r#"{{"addr": "{text}"}}"#);
        let config = ok(&json).config;
        assert_eq!(config.addr, addr, "{text}");
        assert_eq!(config.addr.to_string(), shown);
    }
    // The listen address is checked after DB_DSN, which cannot change it.
    let e = Config::from_parts(Some(r#"{"addr": ":x"}"#), Some("u@tcp(h)/d")).unwrap_err();
    assert_eq!(e.to_string(), r#"config: addr: bad port "x""#);
}

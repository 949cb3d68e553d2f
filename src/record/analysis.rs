//! Reading the recorder's hourly files back for operators (`cc events`): totals per
//! user and per torrent, and the obvious cheat signals — upload reported on a torrent
//! no other user was leeching, hourly upload rates above a threshold, and transfers
//! the tracker refused to credit as implausible.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use serde::Serialize;

/// Default `--max-rate`: 100 MiB/s averaged over an hour.
pub const DEFAULT_MAX_RATE: u64 = 100 * 1024 * 1024;

/// One recorder line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub torrent: u32,
    pub user: u32,
    pub ip: String,
    pub port: u16,
    pub event: String,
    pub seeding: bool,
    pub delta_up: u64,
    pub delta_down: u64,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    /// The recorder's twelfth element (0 when absent): `super::NOT_CREDITED_UP` and
    /// `super::NOT_CREDITED_DOWN`.
    pub flags: u8,
}

type Raw = (u32, u32, String, u16, String, u8, u64, u64, u64, u64, u64);
type RawFlagged = (
    u32,
    u32,
    String,
    u16,
    String,
    u8,
    u64,
    u64,
    u64,
    u64,
    u64,
    u8,
);

pub fn parse_line(text: &str) -> Result<Line, String> {
    let (raw, flags): (Raw, u8) = match serde_json::from_str::<RawFlagged>(text) {
        Ok(r) => (
            (r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10),
            r.11,
        ),
        Err(_) => (serde_json::from_str(text).map_err(|e| e.to_string())?, 0),
    };
    let seeding = match raw.5 {
        0 => false,
        1 => true,
        other => return Err(format!("seeding must be 0 or 1, got {other}")),
    };
    Ok(Line {
        torrent: raw.0,
        user: raw.1,
        ip: raw.2,
        port: raw.3,
        event: raw.4,
        seeding,
        delta_up: raw.6,
        delta_down: raw.7,
        uploaded: raw.8,
        downloaded: raw.9,
        left: raw.10,
        flags,
    })
}

/// An hourly file's content.
pub struct HourFile {
    /// `YYYY-MM-DDTHH` from `events_YYYY-MM-DDTHH.json`, or the file name.
    pub hour: String,
    /// Hours since the epoch, so that "the hour before" is `ordinal - 1`.
    pub ordinal: i64,
    pub name: String,
    pub text: String,
}

impl HourFile {
    /// Files in hour order. Recorder file names give the hour; when some name does not,
    /// the files are taken as consecutive hours in the order given.
    pub fn ordered(files: Vec<(String, String)>) -> Vec<HourFile> {
        let hours: Option<Vec<(String, i64)>> =
            files.iter().map(|(name, _)| hour_of(name)).collect();
        let mut out: Vec<HourFile> = match hours {
            Some(hours) => files
                .into_iter()
                .zip(hours)
                .map(|((name, text), (hour, ordinal))| HourFile {
                    hour,
                    ordinal,
                    name,
                    text,
                })
                .collect(),
            None => files
                .into_iter()
                .enumerate()
                .map(|(index, (name, text))| HourFile {
                    hour: name.clone(),
                    ordinal: i64::try_from(index).unwrap_or(i64::MAX),
                    name,
                    text,
                })
                .collect(),
        };
        out.sort_by_key(|file| file.ordinal);
        out
    }
}

/// The hour of a recorder file name: its `YYYY-MM-DDTHH` text and hours since the epoch.
pub fn hour_of(name: &str) -> Option<(String, i64)> {
    let base = name.rsplit('/').next().unwrap_or(name);
    let hour = base.strip_prefix("events_")?.strip_suffix(".json")?;
    let time =
        chrono::NaiveDateTime::parse_from_str(&format!("{hour}:00"), "%Y-%m-%dT%H:%M").ok()?;
    Some((hour.to_owned(), time.and_utc().timestamp().div_euclid(3600)))
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub announces: u64,
    pub uploaded: u64,
    pub downloaded: u64,
}

impl Totals {
    fn add(&mut self, line: &Line) {
        self.announces += 1;
        self.uploaded = self.uploaded.saturating_add(line.delta_up);
        self.downloaded = self.downloaded.saturating_add(line.delta_down);
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Flag {
    /// Upload reported on a torrent that no other user leeched in that hour or the one
    /// before: there was nobody to upload to.
    UploadWithoutLeechers {
        user: u32,
        torrent: u32,
        hour: String,
        uploaded: u64,
    },
    /// More upload in an hour than `max_rate` bytes per second on average.
    UploadRate {
        user: u32,
        hour: String,
        uploaded: u64,
        bytes_per_second: u64,
    },
    /// A reported transfer the tracker found implausible and did not credit (the
    /// amounts are what the client claimed; they are left out of the totals).
    NotCredited {
        user: u32,
        torrent: u32,
        hour: String,
        uploaded: u64,
        downloaded: u64,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub users: BTreeMap<u32, Totals>,
    pub torrents: BTreeMap<u32, Totals>,
    pub flags: Vec<Flag>,
}

/// A line that is not a recorder line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisError {
    pub file: String,
    pub line: usize,
    pub problem: String,
}

impl std::fmt::Display for AnalysisError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: line {}: {}", self.file, self.line, self.problem)
    }
}

impl std::error::Error for AnalysisError {}

/// Reads the files (in hour order) into a report. An unterminated last line — the
/// tail of a write cut short — is skipped; any other bad line is an error.
pub fn analyze(files: &[HourFile], max_rate: u64) -> Result<Report, AnalysisError> {
    let mut lines: Vec<(usize, Line)> = Vec::new();
    for (index, file) in files.iter().enumerate() {
        let terminated = file.text.ends_with('\n');
        let all: Vec<&str> = file.text.lines().collect();
        for (number, text) in all.iter().enumerate() {
            if text.trim().is_empty() {
                continue;
            }
            match parse_line(text) {
                Ok(line) => lines.push((index, line)),
                Err(_) if !terminated && number + 1 == all.len() => {}
                Err(problem) => {
                    return Err(AnalysisError {
                        file: file.name.clone(),
                        line: number + 1,
                        problem,
                    })
                }
            }
        }
    }

    let mut report = Report::default();
    // Claims the tracker refused count as flags, not as transfer.
    for (file, line) in &mut lines {
        let up = line.flags & super::NOT_CREDITED_UP != 0;
        let down = line.flags & super::NOT_CREDITED_DOWN != 0;
        if !(up || down) {
            continue;
        }
        report.flags.push(Flag::NotCredited {
            user: line.user,
            torrent: line.torrent,
            hour: files[*file].hour.clone(),
            uploaded: if up { line.delta_up } else { 0 },
            downloaded: if down { line.delta_down } else { 0 },
        });
        if up {
            line.delta_up = 0;
        }
        if down {
            line.delta_down = 0;
        }
    }
    // Which users leeched each torrent in each hour.
    let mut leechers: HashMap<(i64, u32), HashSet<u32>> = HashMap::new();
    for (file, line) in &lines {
        report.users.entry(line.user).or_default().add(line);
        report.torrents.entry(line.torrent).or_default().add(line);
        if !line.seeding {
            let hour = files[*file].ordinal;
            leechers
                .entry((hour, line.torrent))
                .or_default()
                .insert(line.user);
        }
    }
    let leeched_by_other = |hour: i64, torrent: u32, user: u32| {
        [hour, hour.saturating_sub(1)].iter().any(|h| {
            leechers
                .get(&(*h, torrent))
                .is_some_and(|users| users.iter().any(|&u| u != user))
        })
    };
    let mut per_user_hour: BTreeMap<(usize, u32), u64> = BTreeMap::new();
    for (file, line) in &lines {
        if line.delta_up == 0 {
            continue;
        }
        let total = per_user_hour.entry((*file, line.user)).or_default();
        *total = total.saturating_add(line.delta_up);
        if !leeched_by_other(files[*file].ordinal, line.torrent, line.user) {
            report.flags.push(Flag::UploadWithoutLeechers {
                user: line.user,
                torrent: line.torrent,
                hour: files[*file].hour.clone(),
                uploaded: line.delta_up,
            });
        }
    }
    for ((file, user), uploaded) in per_user_hour {
        let rate = uploaded as f64 / 3600.0;
        if rate > max_rate as f64 {
            report.flags.push(Flag::UploadRate {
                user,
                hour: files[file].hour.clone(),
                uploaded,
                // Rounded down for display; the comparison above is exact enough.
                bytes_per_second: rate as u64,
            });
        }
    }
    Ok(report)
}

/// A plain-text table for a terminal.
pub fn render_table(report: &Report, max_rate: u64) -> String {
    let mut out = String::new();
    let totals = |out: &mut String, title: &str, key: &str, rows: &BTreeMap<u32, Totals>| {
        let _ = writeln!(out, "{title}");
        let _ = writeln!(
            out,
            "{key:>10} {:>10} {:>20} {:>20}",
            "announces", "uploaded", "downloaded"
        );
        for (id, t) in rows {
            let _ = writeln!(
                out,
                "{id:>10} {:>10} {:>20} {:>20}",
                t.announces, t.uploaded, t.downloaded
            );
        }
        out.push('\n');
    };
    totals(&mut out, "USERS", "user", &report.users);
    totals(&mut out, "TORRENTS", "torrent", &report.torrents);
    let _ = writeln!(out, "FLAGS ({})", report.flags.len());
    for flag in &report.flags {
        match flag {
            Flag::UploadWithoutLeechers {
                user,
                torrent,
                hour,
                uploaded,
            } => {
                let _ = writeln!(
                    out,
                    "upload_without_leechers user {user} torrent {torrent} hour {hour}: {uploaded} bytes uploaded while no other user leeched it"
                );
            }
            Flag::UploadRate {
                user,
                hour,
                uploaded,
                bytes_per_second,
            } => {
                let _ = writeln!(
                    out,
                    "upload_rate user {user} hour {hour}: {uploaded} bytes, {bytes_per_second} bytes/s on average (limit {max_rate})"
                );
            }
            Flag::NotCredited {
                user,
                torrent,
                hour,
                uploaded,
                downloaded,
            } => {
                let _ = writeln!(
                    out,
                    "not_credited user {user} torrent {torrent} hour {hour}: reported {uploaded} bytes up and {downloaded} down, too much to be real"
                );
            }
        }
    }
    out
}

/// The report as one JSON document.
pub fn render_json(report: &Report) -> String {
    #[derive(Serialize)]
    struct Row<'a> {
        id: u32,
        #[serde(flatten)]
        totals: &'a Totals,
    }
    #[derive(Serialize)]
    struct Out<'a> {
        users: Vec<Row<'a>>,
        torrents: Vec<Row<'a>>,
        flags: &'a [Flag],
    }
    fn rows(map: &BTreeMap<u32, Totals>) -> Vec<Row<'_>> {
        map.iter().map(|(&id, totals)| Row { id, totals }).collect()
    }
    let out = Out {
        users: rows(&report.users),
        torrents: rows(&report.torrents),
        flags: &report.flags,
    };
    // Plain structs and integers always serialize.
    let mut text = serde_json::to_string(&out).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(hour: &str, lines: &[&str]) -> (String, String) {
        let mut text = lines.join("\n");
        text.push('\n');
        (format!("events_{hour}.json"), text)
    }

    #[test]
    fn a_claim_not_credited_is_a_flag_and_stays_out_of_the_totals() {
        let files = HourFile::ordered(vec![file(
            "2026-11-23T13",
            &[
                r#"[3,2,"5.6.7.8",7000,"",0,0,0,0,0,100]"#,
                r#"[3,1,"1.2.3.4",6881,"",1,9223372036854775807,7,18446744073709551615,7,0,1]"#,
                r#"[3,1,"1.2.3.4",6881,"",1,5,0,18446744073709551615,7,0]"#,
            ],
        )]);
        let report = analyze(&files, DEFAULT_MAX_RATE).unwrap();
        assert_eq!(
            report.users[&1],
            Totals {
                announces: 2,
                uploaded: 5,
                downloaded: 7
            }
        );
        assert_eq!(
            report.flags,
            [Flag::NotCredited {
                user: 1,
                torrent: 3,
                hour: "2026-11-23T13".to_owned(),
                uploaded: 9223372036854775807,
                downloaded: 0,
            }]
        );
        assert!(render_table(&report, DEFAULT_MAX_RATE).contains(
            "not_credited user 1 torrent 3 hour 2026-11-23T13: reported 9223372036854775807 bytes up and 0 down"
        ));
        assert!(parse_line(r#"[3,1,"1.2.3.4",6881,"",1,5,0,5,0,0,256]"#).is_err());
    }

    #[test]
    fn totals_and_a_planted_cheat() {
        let files = HourFile::ordered(vec![
            file(
                "2026-11-23T13",
                &[
                    // two hours later, nobody leeches torrent 3 anymore
                    r#"[3,1,"1.2.3.4",6881,"",1,50,0,650,0,0]"#,
                    r#"[5,7,"7.7.7.7",6881,"",0,0,0,0,0,5]"#,
                    // user 8 uploads to user 7 at a huge rate
                    r#"[5,8,"8.8.8.8",6881,"",1,400000000000,0,400000000000,0,0]"#,
                ],
            ),
            file(
                "2026-11-23T10",
                &[
                    // torrent 3: user 2 leeches, user 1 seeds to it
                    r#"[3,2,"5.6.7.8",7000,"started",0,0,0,0,0,100]"#,
                    r#"[3,1,"1.2.3.4",6881,"",1,500,0,500,0,0]"#,
                    // torrent 4: user 9 "uploads" with nobody leeching
                    r#"[4,9,"9.9.9.9",6881,"",1,1000,0,1000,0,0]"#,
                ],
            ),
            file(
                "2026-11-23T11",
                &[
                    // user 2's leeching last hour still counts
                    r#"[3,1,"1.2.3.4",6881,"",1,100,0,600,0,0]"#,
                    r#"[3,2,"5.6.7.8",7000,"completed",1,0,100,0,100,0]"#,
                ],
            ),
            // A file between that says nothing of torrent 3: hour 12 is still "two
            // hours later" for hour 13's upload, as hours come from the names.
            file("2026-11-23T12", &[r#"[9,9,"9.9.9.9",1,"",0,0,0,0,0,1]"#]),
        ]);
        let report = analyze(&files, DEFAULT_MAX_RATE).unwrap();
        assert_eq!(
            report.users[&1],
            Totals {
                announces: 3,
                uploaded: 650,
                downloaded: 0
            }
        );
        assert_eq!(
            report.users[&2],
            Totals {
                announces: 2,
                uploaded: 0,
                downloaded: 100
            }
        );
        assert_eq!(report.torrents[&3].announces, 5);
        assert_eq!(
            report.flags,
            vec![
                Flag::UploadWithoutLeechers {
                    user: 9,
                    torrent: 4,
                    hour: "2026-11-23T10".to_owned(),
                    uploaded: 1000
                },
                Flag::UploadWithoutLeechers {
                    user: 1,
                    torrent: 3,
                    hour: "2026-11-23T13".to_owned(),
                    uploaded: 50
                },
                Flag::UploadRate {
                    user: 8,
                    hour: "2026-11-23T13".to_owned(),
                    uploaded: 400_000_000_000,
                    bytes_per_second: 111_111_111
                },
            ]
        );
        let json = render_json(&report);
        assert!(
            json.starts_with(
                "{\"users\":[{\"id\":1,\"announces\":3,\"uploaded\":650,\"downloaded\":0},"
            ),
            "{json}"
        );
        assert!(json.contains("{\"kind\":\"upload_rate\",\"user\":8,\"hour\":\"2026-11-23T13\",\"uploaded\":400000000000,\"bytes_per_second\":111111111}"), "{json}");
        let table = render_table(&report, DEFAULT_MAX_RATE);
        assert!(table.contains("FLAGS (3)"), "{table}");
        assert!(
            table.contains(
                "upload_without_leechers user 9 torrent 4 hour 2026-11-23T10: 1000 bytes"
            ),
            "{table}"
        );
    }

    #[test]
    fn bad_lines_name_file_and_line_but_a_torn_tail_is_skipped() {
        let good = r#"[3,2,"5.6.7.8",7000,"",0,0,0,0,0,100]"#;
        let torn = HourFile::ordered(vec![(
            "events_h.json".to_owned(),
            format!("{good}\n[3,2,\"5.6"),
        )]);
        assert_eq!(analyze(&torn, 1).unwrap().users[&2].announces, 1);
        let bad = HourFile::ordered(vec![(
            "f.json".to_owned(),
            format!("{good}\n[3,2,\"x\",1,\"\",2,0,0,0,0,0]\n"),
        )]);
        let err = analyze(&bad, 1).unwrap_err();
        assert_eq!((err.file.as_str(), err.line), ("f.json", 2));
        assert_eq!(err.problem, "seeding must be 0 or 1, got 2");
    }

    #[test]
    fn hours_from_file_names() {
        let (hour, ordinal) = hour_of("events/events_2026-11-23T13.json").unwrap();
        assert_eq!(hour, "2026-11-23T13");
        assert_eq!(ordinal, hour_of("events_2026-11-23T12.json").unwrap().1 + 1);
        assert_eq!(
            hour_of("events_2026-11-24T00.json").unwrap().1,
            ordinal + 11
        );
        assert_eq!(hour_of("events_2026-11-23T25.json"), None);
        assert_eq!(hour_of("other.json"), None);
    }
}

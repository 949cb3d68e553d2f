//! The `cc` tool's operations (SPEC §10.3, `events` for the recorder's files and
//! `journal` for the journal's segments): read from files or stdin, write the result
//! atomically to a file or to stdout.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::journal_view;
use crate::cache::dump;
use crate::cache::file::write_atomic;
use crate::cache::format::{self, CacheFile};
use crate::record::analysis;

/// What `cc` was asked to do; `-` is stdin or stdout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Dump {
        cache: PathBuf,
        out: PathBuf,
    },
    Restore {
        input: PathBuf,
        output: PathBuf,
    },
    Anonymize {
        cache: PathBuf,
        out: PathBuf,
    },
    Stats {
        cache: PathBuf,
    },
    /// Totals and cheat signals from recorder files.
    Events {
        files: Vec<PathBuf>,
        json: bool,
        max_rate: u64,
    },
    /// Counts and flush numbers per journal segment.
    JournalStats {
        dir: PathBuf,
        json: bool,
    },
    /// Every journal record as a JSON line, of one segment or all.
    JournalDump {
        dir: PathBuf,
        segment: Option<u64>,
    },
}

/// A failed operation, naming the file.
#[derive(Debug)]
pub struct ToolError {
    pub file: String,
    pub problem: String,
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.problem)
    }
}

impl std::error::Error for ToolError {}

fn name(path: &Path) -> String {
    if is_std(path) {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    }
}

fn is_std(path: &Path) -> bool {
    path.as_os_str() == "-"
}

fn read(path: &Path) -> Result<Vec<u8>, ToolError> {
    let fail = |e: std::io::Error| ToolError {
        file: name(path),
        problem: e.to_string(),
    };
    if is_std(path) {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).map_err(fail)?;
        Ok(bytes)
    } else {
        std::fs::read(path).map_err(fail)
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ToolError> {
    let result = if is_std(path) {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(bytes).and_then(|()| stdout.flush())
    } else {
        write_atomic(path, bytes)
    };
    result.map_err(|e| ToolError {
        file: if is_std(path) {
            "stdout".to_owned()
        } else {
            path.display().to_string()
        },
        problem: e.to_string(),
    })
}

/// A peer cache file and the format version it was written in.
fn read_cache(path: &Path) -> Result<(CacheFile, u32), ToolError> {
    let bytes = read(path)?;
    let file = format::decode(&bytes).map_err(|e| ToolError {
        file: name(path),
        problem: e.to_string(),
    })?;
    // A file that decodes has a version field.
    let version = format::version_of(&bytes).unwrap_or(format::VERSION);
    Ok((file, version))
}

fn encode(file: &CacheFile, path: &Path) -> Result<Vec<u8>, ToolError> {
    format::encode(file).map_err(|e| ToolError {
        file: path.display().to_string(),
        problem: e.to_string(),
    })
}

pub fn run(command: &Command) -> Result<(), ToolError> {
    match command {
        Command::Dump { cache, out } => {
            let (file, _) = read_cache(cache)?;
            write(out, dump::to_json(&file).as_bytes())
        }
        Command::Restore { input, output } => {
            let bytes = read(input)?;
            let text = String::from_utf8(bytes).map_err(|_| ToolError {
                file: name(input),
                problem: "not UTF-8 text".to_owned(),
            })?;
            let file = dump::from_json(&text).map_err(|e| ToolError {
                file: name(input),
                problem: e.to_string(),
            })?;
            write(output, &encode(&file, output)?)
        }
        Command::Anonymize { cache, out } => {
            let (file, _) = read_cache(cache)?;
            let anonymous = dump::anonymize(&file, &mut rand::rng());
            write(out, &encode(&anonymous, out)?)
        }
        Command::Stats { cache } => {
            let (file, version) = read_cache(cache)?;
            write(Path::new("-"), dump::stats(&file, version).as_bytes())
        }
        Command::Events {
            files,
            json,
            max_rate,
        } => {
            let mut texts = Vec::with_capacity(files.len());
            for path in files {
                let text = String::from_utf8(read(path)?).map_err(|_| ToolError {
                    file: name(path),
                    problem: "not UTF-8 text".to_owned(),
                })?;
                texts.push((name(path), text));
            }
            let report = analysis::analyze(&analysis::HourFile::ordered(texts), *max_rate)
                .map_err(|e| ToolError {
                    file: e.file.clone(),
                    problem: format!("line {}: {}", e.line, e.problem),
                })?;
            let out = if *json {
                analysis::render_json(&report)
            } else {
                analysis::render_table(&report, *max_rate)
            };
            write(Path::new("-"), out.as_bytes())
        }
        Command::JournalStats { dir, json } => {
            write(Path::new("-"), journal_view::stats(dir, *json)?.as_bytes())
        }
        Command::JournalDump { dir, segment } => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            journal_view::dump(dir, *segment, &mut out)
        }
    }
}

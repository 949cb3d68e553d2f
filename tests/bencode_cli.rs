//! The `bencode` binary as a user runs it: files and stdin in, stdout out, the
//! one-line stderr report and the exit codes of SPEC §1.2 and §11.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// Runs `bencode args…` with `stdin` piped in.
fn bencode(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bencode"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The tool may exit before reading (usage errors), so a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

/// A file named `name` holding `contents`, unique to the calling test.
fn file(name: &str, contents: &[u8]) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    std::fs::write(&path, contents).unwrap();
    path
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

/// A torrent-like document: binary `pieces`, a nested dictionary, a big integer.
const TORRENT: &[u8] = b"d8:announce14:http://t/a/ann4:infod6:lengthi123456789012345678901234567890e4:name3:a.b6:pieces4:\x00\xff\x10\x80e4:listli-1e0:deee";
const TORRENT_JSON: &str = "{\"announce\":\"http://t/a/ann\",\"info\":{\"length\":123456789012345678901234567890,\"name\":\"a.b\",\"pieces\":{\"$hex\":\"00ff1080\"}},\"list\":[-1,\"\",{}]}\n";

#[test]
fn decodes_a_file() {
    let path = file("decode.torrent", TORRENT);
    let out = bencode(&["-d", path.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), TORRENT_JSON);
    assert!(out.stderr.is_empty());
}

#[test]
fn encodes_a_file() {
    let path = file("encode.json", TORRENT_JSON.as_bytes());
    let out = bencode(&[path.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, TORRENT);
    assert!(out.stderr.is_empty());
}

#[test]
fn encode_sorts_keys_and_adds_no_newline() {
    let out = bencode(&[], br#"{"b":true,"a":[false,"x"],"$$c":{"$hex":"ff"}}"#);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"d2:$c1:\xff1:ali0e1:xe1:bi1ee");
}

#[test]
fn reads_stdin_with_dash_or_without_file() {
    for args in [&["-d", "-"][..], &["-d"][..], &["--decode", "-"][..]] {
        let out = bencode(args, TORRENT);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(text(&out.stdout), TORRENT_JSON, "{args:?}");
    }
    let out = bencode(&["-"], TORRENT_JSON.as_bytes());
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, TORRENT);
}

#[test]
fn decode_output_ends_with_exactly_one_newline() {
    for input in [&b"i1e"[..], b"i1e\n", b"i1e\n\n \r\n", b"le", b"0:"] {
        let out = bencode(&["-d"], input);
        assert_eq!(out.status.code(), Some(0));
        assert!(out.stdout.ends_with(b"\n"), "{input:?}");
        assert!(!out.stdout.ends_with(b"\n\n"), "{input:?}");
        assert_eq!(out.stdout.iter().filter(|&&b| b == b'\n').count(), 1);
    }
}

#[test]
fn decode_then_encode_reproduces_the_input() {
    let json = bencode(&["-d"], TORRENT);
    let back = bencode(&[], &json.stdout);
    assert_eq!(back.status.code(), Some(0));
    assert_eq!(back.stdout, TORRENT);
}

#[test]
fn help_goes_to_stdout() {
    for flag in ["-h", "--help"] {
        let out = bencode(&[flag], b"");
        assert_eq!(out.status.code(), Some(0));
        assert!(text(&out.stdout).contains("Usage: bencode [-d] [FILE]"));
        assert!(text(&out.stdout).contains("-d, --decode"));
        assert!(out.stderr.is_empty());
    }
}

#[test]
fn version() {
    for flag in ["-V", "--version"] {
        let out = bencode(&[flag], b"");
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            text(&out.stdout),
            format!("bencode {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn usage_errors_exit_2_with_usage_on_stderr() {
    for args in [
        &["-x"][..],
        &["--nope"][..],
        &["a", "b"][..],
        &["-d", "-", "-"][..],
    ] {
        let out = bencode(args, b"i1e");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(
            text(&out.stderr).contains("Usage: bencode [-d] [FILE]"),
            "{args:?}"
        );
    }
}

#[test]
fn invalid_input_exits_1_with_one_line() {
    let out = bencode(&["-d"], b"i03e");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        "bencode: stdin: offset 1: leading zero in integer\n"
    );

    let out = bencode(&["-d", "-"], b"d1:ai1e1:ai2ee");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        "bencode: stdin: offset 7: duplicate dictionary key \"a\"\n"
    );

    let out = bencode(&[], b"{\"a\":[1,null]}");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        "bencode: stdin: offset 8: a[1]: null is not supported\n"
    );

    let path = file("bad.json", b"{\"$x\":1}");
    let out = bencode(&[path.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        format!(
            "bencode: {}: offset 1: key \"$x\" starts with a single '$' (write \"$$x\" for a key that starts with '$')\n",
            path.display()
        )
    );

    // Trailing garbage after a good value: nothing at all on stdout.
    let out = bencode(&["-d"], b"i1ei2e");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        "bencode: stdin: offset 3: trailing data after the value: 'i'\n"
    );
}

#[test]
fn unreadable_file_exits_1() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-does-not-exist");
    let out = bencode(&["-d", path.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("bencode: {}: ", path.display())),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);
}

//! `jepsen check` on recorded histories: the exit status says valid (0),
//! invalid (1) or unknown (2), and an invalid key is named. Needs no root.

use std::path::PathBuf;
use std::process::Command;

fn line(index: usize, time: u64, process: u64, kind: &str, f: &str, value: &str) -> String {
    format!(
        r#"{{"index":{index},"time":{time},"process":{process},"type":"{kind}","f":"{f}","key":"/jepsen/r/0","value":{value},"node":"n1","error":null}}"#
    )
}

fn history(name: &str, stale: bool) -> PathBuf {
    let read = if stale { "1" } else { "2" };
    let lines = [
        line(0, 10, 0, "invoke", "write", "1"),
        line(1, 20, 0, "ok", "write", "1"),
        line(2, 30, 1, "invoke", "write", "2"),
        line(3, 40, 1, "ok", "write", "2"),
        line(4, 50, 0, "invoke", "read", "null"),
        line(5, 60, 0, "ok", "read", read),
        // An indeterminate compare-and-set, open to the end.
        line(6, 70, 2, "invoke", "cas", "[2,3]"),
        line(7, 80, 2, "info", "cas", "[2,3]"),
    ];
    let path = std::env::temp_dir().join(format!(
        "flotilla-jepsen-check-{name}-{}.jsonl",
        std::process::id()
    ));
    std::fs::write(&path, lines.join("\n") + "\n").expect("write history");
    path
}

fn check(path: &PathBuf) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_jepsen"))
        .args(["check", "--history"])
        .arg(path)
        .output()
        .expect("run jepsen check");
    let _ = std::fs::remove_file(path);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn valid_history_exits_zero() {
    let (code, stdout) = check(&history("valid", false));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("1 valid, 0 invalid"), "{stdout}");
}

#[test]
fn stale_read_exits_one_and_names_the_key() {
    let (code, stdout) = check(&history("stale", true));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("/jepsen/r/0: INVALID"), "{stdout}");
    assert!(stdout.contains("breaking operation #4"), "{stdout}");
}

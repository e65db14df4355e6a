//! Facts about the machine this process runs on, shared by the master and
//! the agent (which name themselves after it by default).

/// This machine's host name, lower-cased and made a valid member or node name.
pub fn name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_else(|_| "master".into());
    let cleaned: String = raw
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "master".into()
    } else {
        cleaned
    }
}

//! File discovery (`file_sd_configs`): target groups read from JSON or YAML
//! files matching the configured globs, re-read when a file's modification
//! time or size changes, polled every `refresh_interval`.
//!
//! Each file holds a list of `{targets: [...], labels: {...}}`; group `i` of
//! file `f` has source `f:i` and the label `__meta_filepath` = `f`. A file
//! that fails to read or parse keeps its previous groups (and logs); a file
//! that disappears removes its groups.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::FileSdConfig;
use crate::discovery::{DiscoveryError, GroupSink, TargetGroup, TargetGroupDocument};

/// The label holding the file a group came from.
pub const FILEPATH_LABEL: &str = "__meta_filepath";

#[derive(Debug, Clone, Copy, PartialEq)]
struct FileState {
    modified: Option<SystemTime>,
    len: u64,
    n_groups: usize,
}

/// Polls the files of one `file_sd_configs` entry.
#[derive(Debug)]
pub struct FileDiscoverer {
    config: FileSdConfig,
    files: BTreeMap<PathBuf, FileState>,
}

impl FileDiscoverer {
    pub fn new(config: FileSdConfig) -> Self {
        FileDiscoverer {
            config,
            files: BTreeMap::new(),
        }
    }

    /// Re-reads new and changed files and returns the groups that changed
    /// (groups without targets for sources that went away), plus the errors
    /// of files that could not be read.
    pub fn refresh(&mut self) -> (Vec<TargetGroup>, Vec<DiscoveryError>) {
        let mut changed = Vec::new();
        let mut errors = Vec::new();
        let mut present = BTreeSet::new();
        for pattern in &self.config.files {
            match expand_glob(pattern) {
                Ok(paths) => present.extend(paths),
                Err(source) => errors.push(DiscoveryError::ReadFile {
                    path: pattern.clone(),
                    source,
                }),
            }
        }
        for path in &present {
            let metadata = match std::fs::metadata(path) {
                Ok(m) => m,
                Err(source) => {
                    errors.push(DiscoveryError::ReadFile {
                        path: path.display().to_string(),
                        source,
                    });
                    continue;
                }
            };
            let previous = self.files.get(path).copied();
            let modified = metadata.modified().ok();
            if let Some(prev) = previous
                && prev.modified == modified
                && prev.len == metadata.len()
            {
                continue;
            }
            match read_groups(path) {
                Ok(groups) => {
                    let n_groups = groups.len();
                    let name = path.display().to_string();
                    let old_n = previous.map_or(0, |p| p.n_groups);
                    changed.extend(groups);
                    changed.extend((n_groups..old_n).map(|i| empty_group(&name, i)));
                    self.files.insert(
                        path.clone(),
                        FileState {
                            modified,
                            len: metadata.len(),
                            n_groups,
                        },
                    );
                }
                Err(error) => errors.push(error),
            }
        }
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !present.contains(*p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(state) = self.files.remove(&path) {
                let name = path.display().to_string();
                changed.extend((0..state.n_groups).map(|i| empty_group(&name, i)));
            }
        }
        (changed, errors)
    }

    /// Refreshes now and then every `refresh_interval`, reporting changes.
    pub async fn run(mut self, sink: GroupSink) {
        let mut ticks = tokio::time::interval(self.config.refresh_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let (changed, errors) = self.refresh();
            for error in errors {
                tracing::warn!(error = %error, "File discovery failed; keeping the previous targets");
            }
            if !changed.is_empty() {
                sink.update(changed);
            }
        }
    }
}

fn empty_group(file: &str, index: usize) -> TargetGroup {
    TargetGroup {
        source: format!("{file}:{index}"),
        ..TargetGroup::default()
    }
}

/// Reads one file of target groups (JSON for `.json`, YAML otherwise).
pub fn read_groups(path: &Path) -> Result<Vec<TargetGroup>, DiscoveryError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| DiscoveryError::ReadFile {
        path: name.clone(),
        source,
    })?;
    let parse_error = |message: String| DiscoveryError::ParseFile {
        path: name.clone(),
        message,
    };
    let documents: Vec<Option<TargetGroupDocument>> = if name.ends_with(".json") {
        serde_json::from_str(&text).map_err(|e| parse_error(e.to_string()))?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_yaml::from_str(&text).map_err(|e| parse_error(e.to_string()))?
    };
    documents
        .into_iter()
        .enumerate()
        .map(|(i, document)| {
            let document =
                document.ok_or_else(|| parse_error("nil target group item found".into()))?;
            document
                .into_group(format!("{name}:{i}"), (FILEPATH_LABEL, &name))
                .map_err(parse_error)
        })
        .collect()
}

/// The files matching a glob whose wildcards (`*`, `?`) are only in the last
/// path element, sorted. A pattern without wildcards names at most itself.
///
/// # Errors
/// The directory exists but cannot be listed.
pub fn expand_glob(pattern: &str) -> std::io::Result<Vec<PathBuf>> {
    let path = Path::new(pattern);
    let file_pattern = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !file_pattern.contains(['*', '?']) {
        return Ok(if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        });
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        if let Some(name) = entry.file_name().to_str()
            && wildcard_match(file_pattern, name)
            && entry.path().is_file()
        {
            out.push(dir.join(name));
        }
    }
    out.sort();
    Ok(out)
}

/// Shell-style matching of `*` (any run) and `?` (one character).
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((star_p, star_n)) = star {
            p = star_p + 1;
            n = star_n + 1;
            star = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn discoverer(dir: &Path) -> FileDiscoverer {
        FileDiscoverer::new(FileSdConfig {
            files: vec![
                dir.join("*.json").display().to_string(),
                dir.join("static.yml").display().to_string(),
            ],
            refresh_interval: Duration::from_secs(300),
        })
    }

    fn summary(groups: &[TargetGroup]) -> Vec<String> {
        groups
            .iter()
            .map(|g| {
                let targets: Vec<&str> = g
                    .targets
                    .iter()
                    .filter_map(|t| t.get("__address__"))
                    .collect();
                let source = g.source.rsplit('/').next().unwrap_or("");
                format!(
                    "{source} {targets:?} {}",
                    g.labels.get("env").unwrap_or("-")
                )
            })
            .collect()
    }

    /// Rewrites a file so that its size or modification time changes.
    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        let bumped = SystemTime::now() + Duration::from_secs(1);
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(bumped).unwrap();
    }

    #[test]
    fn reads_json_and_yaml_and_follows_changes() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("a.json");
        write(
            &json,
            r#"[{"targets": ["h1:9100", "h2:9100"], "labels": {"env": "prod"}}, {"targets": ["h3:9100"]}]"#,
        );
        write(
            &dir.path().join("static.yml"),
            "- targets: ['y:1']\n  labels: {env: dev}\n",
        );
        write(&dir.path().join("ignored.txt"), "not a target file");
        let mut sd = discoverer(dir.path());

        let (groups, errors) = sd.refresh();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            summary(&groups),
            [
                r#"a.json:0 ["h1:9100", "h2:9100"] prod"#,
                r#"a.json:1 ["h3:9100"] -"#,
                r#"static.yml:0 ["y:1"] dev"#,
            ]
        );
        assert_eq!(
            groups[0].labels.get(FILEPATH_LABEL),
            Some(json.display().to_string().as_str())
        );

        // Nothing changed: nothing reported.
        assert!(sd.refresh().0.is_empty());

        // One group left: the second source is reported empty.
        write(&json, r#"[{"targets": ["h1:9100"]}]"#);
        assert_eq!(
            summary(&sd.refresh().0),
            [r#"a.json:0 ["h1:9100"] -"#, "a.json:1 [] -"]
        );

        // A broken file keeps its groups and reports the error.
        write(&json, "[{");
        let (groups, errors) = sd.refresh();
        assert!(groups.is_empty());
        assert!(
            errors[0]
                .to_string()
                .starts_with(&format!("parsing {}", json.display()))
        );

        // A removed file removes its groups.
        std::fs::remove_file(&json).unwrap();
        let (groups, _) = sd.refresh();
        assert_eq!(summary(&groups), ["a.json:0 [] -"]);
    }

    #[test]
    fn invalid_documents_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.yml");
        std::fs::write(&path, "- targets: ['a:1']\n- null\n").unwrap();
        let err = read_groups(&path).unwrap_err().to_string();
        assert!(err.ends_with("nil target group item found"), "{err}");
        std::fs::write(&path, "").unwrap();
        assert!(read_groups(&path).unwrap().is_empty());
    }

    #[test]
    fn wildcards_match_like_the_shell() {
        assert!(wildcard_match("*.yml", "a.yml"));
        assert!(wildcard_match("a?c*", "abcdef"));
        assert!(!wildcard_match("*.yml", "a.yaml"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("*a*b", "xaxxb"));
        assert!(!wildcard_match("*a*b", "xaxxbc"));
    }
}

//! `kvlar init`: templates embedded in the binary, written with their test
//! file, never overwriting without `--force`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{kvlar, lines, policies_dir, stderr, temp_path};

fn temp_dir(name: &str) -> PathBuf {
    temp_path("init", name)
}

fn curated(name: &str) -> String {
    std::fs::read_to_string(policies_dir().join(name)).expect("curated file")
}

#[test]
fn list_names_every_template_with_its_description() {
    let o = kvlar(&["init", "--list"]);
    assert_eq!(o.status.code(), Some(0));
    let out = lines(&o);
    let names: Vec<&str> = out
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        [
            "default",
            "strict",
            "permissive",
            "filesystem",
            "filesystem-native",
            "shell",
            "postgres",
            "sqlite",
            "git",
            "github",
            "slack",
            "fetch",
            "memory"
        ]
    );
    assert_eq!(
        out[0],
        "default            Balanced starter for any server; reads pass, secrets refused, writes, deletes and shell need approval"
    );
    assert_eq!(
        out[11],
        "fetch              Web fetch without SSRF; private, loopback and metadata hosts, userinfo URLs and non-http schemes refused"
    );
}

#[test]
fn writes_the_template_and_its_tests_which_pass() {
    let dir = temp_dir("write");
    let d = dir.display().to_string();
    let o = kvlar(&["init", "--template", "git", "--dir", &d]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        lines(&o),
        [
            format!("wrote {d}/git.yaml"),
            format!("wrote {d}/git.test.yaml"),
            format!("next: kvlar test -f {d}/git.test.yaml"),
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("git.yaml")).expect("written"),
        curated("git.yaml")
    );
    let t = format!("{d}/git.test.yaml");
    let o = kvlar(&["test", "-f", &t]);
    assert_eq!(lines(&o), ["25 passed, 0 failed"]);
}

#[test]
fn default_template_into_the_current_folder() {
    let dir = temp_dir("cwd");
    std::fs::create_dir_all(&dir).expect("dir");
    let o = Command::new(env!("CARGO_BIN_EXE_kvlar"))
        .arg("init")
        .current_dir(&dir)
        .output()
        .expect("kvlar runs");
    assert_eq!(
        lines(&o),
        [
            "wrote ./default.yaml",
            "wrote ./default.test.yaml",
            "next: kvlar test -f ./default.test.yaml"
        ]
    );
    assert!(dir.join("default.test.yaml").exists());
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = temp_dir("force");
    std::fs::create_dir_all(&dir).expect("dir");
    let init = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kvlar"))
            .args(["init", "-t", "fetch", "-d", "."])
            .args(extra)
            .env("NO_COLOR", "1")
            .current_dir(&dir)
            .output()
            .expect("kvlar runs")
    };
    assert_eq!(init(&[]).status.code(), Some(0));
    std::fs::write(dir.join("fetch.yaml"), "# mine\n").expect("edit");
    let o = init(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(lines(&o), Vec::<String>::new());
    let err = stderr(&o);
    assert!(
        err.contains("./fetch.yaml and ./fetch.test.yaml already exist"),
        "{err}"
    );
    assert!(err.contains("pass --force to overwrite"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("fetch.yaml")).expect("kept"),
        "# mine\n"
    );

    std::fs::remove_file(dir.join("fetch.test.yaml")).expect("remove");
    let err = stderr(&init(&[]));
    assert!(err.contains("./fetch.yaml already exists"), "{err}");
    assert!(!dir.join("fetch.test.yaml").exists(), "nothing written");

    let o = init(&["--force"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(dir.join("fetch.yaml")).expect("overwritten"),
        curated("fetch.yaml")
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("fetch.test.yaml")).expect("written"),
        curated("fetch.test.yaml")
    );
}

#[test]
fn unknown_template_suggests_the_closest() {
    let o = kvlar(&["init", "--template", "gitub"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("unknown template `gitub`"), "{err}");
    assert!(err.contains("did you mean `github`?"), "{err}");
}

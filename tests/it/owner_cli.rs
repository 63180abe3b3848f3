//! The owner commands: importing a project, creating a site, exporting.

use crate::helpers::{cli, cli_ok, create_site, project_fixture};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("list the fixture") {
        let entry = entry.expect("a directory entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy a fixture file");
    }
}

#[test]
fn a_site_gets_a_uuid_sitekey_and_a_0x_secret_shown_once() {
    let dir = tempfile::tempdir().unwrap();
    let project = cli_ok(
        dir.path(),
        &["project", "import", project_fixture().to_str().unwrap()],
    );
    let site = create_site(dir.path(), &["www.example.gouv.fr"], project.trim());
    assert!(
        protocol::SiteKey::parse(site.sitekey.clone()).is_ok(),
        "{}",
        site.sitekey
    );
    assert!(protocol::SiteSecret::parse(site.secret.clone()).is_ok());
    // The secret is stored only hashed: it appears nowhere in the data directory.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let needle = site.secret.as_bytes();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "secret stored in clear"
        );
    }
}

#[test]
fn a_project_with_a_label_outside_its_set_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let project_dir = dir.path().join("project");
    copy_dir(project_fixture(), &project_dir);
    let csv = std::fs::read_to_string(project_dir.join("labels.csv")).unwrap();
    let first = csv.lines().nth(1).unwrap().split(',').next().unwrap().to_owned();
    std::fs::write(project_dir.join("labels.csv"), format!("{csv}{first}x,round\n")).unwrap();
    let data = dir.path().join("data");
    let out = cli(&data, &["project", "import", project_dir.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("round"), "{stderr}");
    // Nothing was stored: the next import gets project 1.
    let ok = cli_ok(&data, &["project", "import", project_fixture().to_str().unwrap()]);
    assert_eq!(ok.trim(), "1");
}

#[test]
fn a_file_that_is_not_an_image_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let project_dir = dir.path().join("project");
    copy_dir(project_fixture(), &project_dir);
    std::fs::write(project_dir.join("zz-fake.png"), b"<html>not an image</html>").unwrap();
    let out = cli(
        &dir.path().join("data"),
        &["project", "import", project_dir.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("zz-fake.png"));
}

#[test]
fn a_site_for_a_missing_project_or_a_bad_hostname_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(
        dir.path(),
        &["site", "create", "--hostname", "example.org", "--project", "9"],
    );
    assert!(!out.status.success());
    let project = cli_ok(
        dir.path(),
        &["project", "import", project_fixture().to_str().unwrap()],
    );
    let out = cli(
        dir.path(),
        &[
            "site",
            "create",
            "--hostname",
            "https://example.org:443",
            "--project",
            project.trim(),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("host name"));
}

#[test]
fn exports_come_as_csv_too() {
    let dir = tempfile::tempdir().unwrap();
    let project = cli_ok(
        dir.path(),
        &["project", "import", project_fixture().to_str().unwrap()],
    );
    let labels = cli_ok(
        dir.path(),
        &[
            "project",
            "export",
            project.trim(),
            "--what",
            "labels",
            "--format",
            "csv",
        ],
    );
    let mut lines = labels.lines();
    let header = lines.next().unwrap();
    assert_eq!(header, "image,external_id,status,label,confidence,votes");
    // 6 gold + 12 unknown images, one row each.
    assert_eq!(lines.count(), 18);
    assert_eq!(labels.matches(",gold,flat,1,").count(), 6, "{labels}");
    assert_eq!(labels.matches(",open,,,").count(), 12, "{labels}");
}

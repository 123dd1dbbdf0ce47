//! The committed man pages and shell completions match the CLI.
//! Regenerate with `MDT_BLESS=1 cargo test --test docs`.

use std::path::Path;

#[test]
fn man_pages_and_completions_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bless = std::env::var_os("MDT_BLESS").is_some();
    let mut stale = Vec::new();
    for (rel, contents) in mdt::docs::generated_files() {
        let path = root.join(&rel);
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &contents).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&contents[..]) {
            stale.push(rel);
        }
    }
    assert!(
        stale.is_empty(),
        "out of date with the CLI: {stale:?}; run `MDT_BLESS=1 cargo test --test docs`"
    );
}

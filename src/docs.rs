//! The man pages and shell completions committed in `docs/` and
//! `completions/`, generated from the clap command so they cannot drift
//! (a test compares them; `MDT_BLESS=1 cargo test --test docs` rewrites them).

use clap_complete::Shell;

/// (path relative to the repository root, contents) of every generated file.
pub fn generated_files() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (shell, name) in [
        (Shell::Bash, "mdt.bash"),
        (Shell::Zsh, "_mdt"),
        (Shell::Fish, "mdt.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut crate::cli::command(), "mdt", &mut buf);
        files.push((format!("completions/{name}"), buf));
    }
    let cmd = crate::cli::command();
    files.push(("docs/mdt.1".into(), man_page(cmd.clone())));
    for sub in cmd.get_subcommands() {
        let name = format!("mdt-{}", sub.get_name());
        let page = sub
            .clone()
            .name(name.clone())
            .bin_name(name.replace('-', " "));
        files.push((format!("docs/{name}.1"), man_page(page)));
    }
    files
}

fn man_page(cmd: clap::Command) -> Vec<u8> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut buf)
        .expect("rendering into memory cannot fail");
    buf
}

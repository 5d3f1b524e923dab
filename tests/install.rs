//! meson installs the plugin where a packager and a user without root expect it: under the
//! prefix (LIBDIR/gstreamer-1.0), staged under DESTDIR, or into GStreamer's own plugin
//! directory when asked.

use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn meson_setup(build: &Path, options: &[&str]) {
    run(Command::new("meson")
        .arg("setup")
        .arg(build)
        .args(options)
        .current_dir(env!("CARGO_MANIFEST_DIR")));
}

/// Where `meson install` would put each file of `build`: (built file, installed path).
fn installed(build: &Path) -> Vec<(String, String)> {
    let json = run(Command::new("meson")
        .args(["introspect", "--installed"])
        .arg(build));
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&json).unwrap();
    map.into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap().to_string()))
        .collect()
}

fn plugin_path(build: &Path) -> String {
    installed(build)
        .into_iter()
        .find(|(built, _)| built.ends_with("libgstwhisperstt.so"))
        .expect("meson installs no libgstwhisperstt.so")
        .1
}

#[test]
fn a_prefix_install_staged_under_destdir_puts_the_plugin_under_the_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let (build, prefix, stage) = (
        tmp.path().join("build"),
        tmp.path().join("prefix"),
        tmp.path().join("stage"),
    );
    meson_setup(&build, &[&format!("--prefix={}", prefix.display())]);
    let plugin = plugin_path(&build);
    assert!(
        plugin.starts_with(prefix.to_str().unwrap())
            && plugin.ends_with("/gstreamer-1.0/libgstwhisperstt.so"),
        "{plugin}"
    );
    run(Command::new("meson")
        .args(["install", "--quiet", "-C"])
        .arg(&build)
        .env("DESTDIR", &stage));
    let staged = format!("{}{plugin}", stage.display());
    assert!(Path::new(&staged).is_file(), "nothing at {staged}");
    assert!(
        !Path::new(&plugin).exists(),
        "installed outside DESTDIR: {plugin}"
    );
    // What a user with GST_PLUGIN_PATH sees: the file is a plugin with both elements.
    let inspect = run(Command::new("gst-inspect-1.0")
        .arg(&staged)
        .env("GST_REGISTRY", tmp.path().join("registry.bin")));
    for line in [
        "Name                     whisperstt",
        "whispersink:",
        "whispertranscribe:",
    ] {
        assert!(inspect.contains(line), "no '{line}' in:\n{inspect}");
    }
}

#[test]
fn system_plugindir_installs_where_gstreamer_looks() {
    let tmp = tempfile::tempdir().unwrap();
    let build = tmp.path().join("build");
    meson_setup(&build, &["-Dsystem-plugindir=true"]);
    let pluginsdir =
        run(Command::new("pkg-config").args(["--variable=pluginsdir", "gstreamer-1.0"]));
    assert_eq!(
        plugin_path(&build),
        format!("{}/libgstwhisperstt.so", pluginsdir.trim())
    );
}

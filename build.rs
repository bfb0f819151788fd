//! Builds the call page (web-client/, TypeScript bundled by esbuild) and hands its files to the
//! binary, which embeds them: the server needs no files beside it at run time.
//!
//! - `web-client/node_modules` present: runs `npm run build` (seconds) and embeds `dist/`.
//! - otherwise an existing `web-client/dist` is embedded as it is;
//! - otherwise a page that says how to build the client is embedded, with a cargo warning.
//!
//! `VIZIT_SKIP_WEB_BUILD=1` skips npm and embeds what `dist/` holds.

use std::path::Path;
use std::process::Command;

const FILES: [&str; 5] = [
    "call.html",
    "app.js",
    "app.css",
    "consultations.html",
    "consultations.js",
];

fn main() {
    for path in [
        "web-client/src",
        "web-client/call.html",
        "web-client/app.css",
        "web-client/build.mjs",
        "web-client/package.json",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-env-changed=VIZIT_SKIP_WEB_BUILD");
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("web");
    std::fs::create_dir_all(&out).expect("OUT_DIR is writable");

    let web = Path::new("web-client");
    let skip = std::env::var_os("VIZIT_SKIP_WEB_BUILD").is_some_and(|v| v != "0");
    if !skip && web.join("node_modules").is_dir() {
        let status = Command::new("npm")
            .args(["run", "--silent", "build"])
            .current_dir(web)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!(
                "`npm run build` in web-client failed ({s}); fix the TypeScript or run `npm ci` there"
            ),
            Err(e) => panic!("cannot run npm to build web-client: {e}"),
        }
    }

    let dist = web.join("dist");
    for file in FILES {
        let target = out.join(file);
        let built = dist.join(file).is_file();
        if !built {
            println!(
                "cargo:warning=web-client/dist/{file} is missing: run `npm ci` in web-client/ and build again"
            );
        }
        if built {
            std::fs::copy(dist.join(file), &target).expect("copy a built web-client file");
        } else {
            let placeholder = match file {
                "call.html" => {
                    "<!doctype html><meta charset=utf-8><title>Vizit</title><p>Страница звонка не собрана: выполните <code>npm ci</code> в каталоге web-client и пересоберите Vizit.</p>"
                }
                _ => "",
            };
            std::fs::write(&target, placeholder).expect("write a placeholder web file");
        }
    }
}

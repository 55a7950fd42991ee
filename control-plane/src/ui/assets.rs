//! The dashboard's files (`ui/static/`), compiled into the binary: no path is read at run time,
//! so the image and a read-only root serve them as they were built. A test checks that this
//! table and the folder list the same files.

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Its path under `/ui/`.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../ui/static/", $path)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Every file of `ui/static/`.
pub const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("app.css", CSS),
    asset!("js/app.js", JS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/charts.js", JS),
    asset!("js/forms.js", JS),
    asset!("js/pages/overview.js", JS),
    asset!("js/pages/budgets.js", JS),
    asset!("js/pages/budget.js", JS),
    asset!("js/pages/reports.js", JS),
    asset!("js/pages/calculator.js", JS),
    asset!("js/pages/profiles.js", JS),
    asset!("js/pages/anomalies.js", JS),
    asset!("js/pages/alerts.js", JS),
    asset!("js/pages/channels.js", JS),
    asset!("vendor/uPlot.iife.min.js", JS),
    asset!("vendor/uPlot.min.css", CSS),
    asset!("vendor/uPlot.LICENSE", "text/plain; charset=utf-8"),
    asset!("pkg/tollgate_model_wasm.js", JS),
    asset!("pkg/tollgate_model_wasm_bg.wasm", "application/wasm"),
];

/// The file at `path` (relative to `/ui/`), if embedded.
pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn files_under(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().unwrap().is_dir() {
                files_under(&entry.path(), &format!("{name}/"), out);
            } else {
                out.push(name);
            }
        }
    }

    #[test]
    fn every_file_of_ui_static_is_embedded_and_nothing_else() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui/static");
        let mut on_disk = Vec::new();
        files_under(&dir, "", &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
    }

    #[test]
    fn every_asset_has_a_content_type_matching_its_extension() {
        for a in ASSETS {
            let ext = a.path.rsplit('.').next().unwrap();
            let want = match ext {
                "html" => "text/html",
                "css" => "text/css",
                "js" => "text/javascript",
                "wasm" => "application/wasm",
                _ => "text/plain",
            };
            assert!(a.content_type.starts_with(want), "{}", a.path);
        }
    }
}

//! Loading the named fixtures under the repository's `tests/fixtures/`.
#![allow(dead_code)] // each test crate uses a different part

use std::path::PathBuf;

use serde::Deserialize;
use tollgate_filter_core::providers::{Route, RouteTable};
use tollgate_filter_core::stream::{ResponseOutcome, ResponseReader, StreamLimits};
use tollgate_model::Usage;

/// `<name>.expected.json`: how the call was made and the usage it must yield.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub path: String,
    pub host: Option<String>,
    pub streaming: bool,
    /// The request reader's input estimate, used when the response reports no input.
    #[serde(default)]
    pub request_estimate: u64,
    pub usage: Usage,
}

pub struct Fixture {
    pub name: String,
    pub body: Vec<u8>,
    pub expected: Expected,
    pub route: Route,
}

impl Fixture {
    pub fn read(&self, chunks: &[&[u8]]) -> ResponseOutcome {
        let framing = self.route.framing(self.expected.streaming);
        let mut reader =
            ResponseReader::new(self.route.api.dialect(), framing, StreamLimits::default());
        for chunk in chunks {
            reader.feed(chunk);
        }
        reader.finish(|| self.expected.request_estimate)
    }

    pub fn is_streamed(&self) -> bool {
        self.route.streams(self.expected.streaming)
    }
}

/// `tests/fixtures`, found from this crate's directory as cargo gives it at run time (a test
/// binary reused from a shared build cache may have been built in another checkout).
pub fn fixtures_dir() -> PathBuf {
    let here = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    here.join("../../tests/fixtures")
}

/// Every fixture with an expected file, sorted by name.
pub fn all() -> Vec<Fixture> {
    let dir = fixtures_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for expected_name in names.iter().filter(|n| n.ends_with(".expected.json")) {
        let stem = expected_name.trim_end_matches(".expected.json");
        let body_name = names
            .iter()
            .find(|n| {
                n.strip_prefix(stem).is_some_and(|ext| {
                    ext.starts_with('.')
                        && !ext.contains(".expected")
                        && ext[1..].find('.').is_none()
                })
            })
            .unwrap_or_else(|| panic!("no fixture body for {expected_name}"));
        let expected: Expected =
            serde_json::from_slice(&std::fs::read(dir.join(expected_name)).unwrap())
                .unwrap_or_else(|e| panic!("{expected_name}: {e}"));
        let route = RouteTable::builtin()
            .match_request("POST", &expected.path, expected.host.as_deref())
            .unwrap_or_else(|| panic!("{expected_name}: path does not route"));
        out.push(Fixture {
            name: body_name.clone(),
            body: std::fs::read(dir.join(body_name)).unwrap(),
            expected,
            route,
        });
    }
    out
}

//! A streamed export's memory does not grow with its size: one million records exported as
//! CSV over real HTTP, with every allocation of this process counted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The counting allocator below is the one unsafe thing here: it forwards to the system
// allocator and only adds atomic counters.
#![allow(unsafe_code)]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::Method;
use support::app::{T0_MS, TestApp};
use tollgate_control_plane::ledger::{
    CallOutcome, LedgerLimits, RecordSource, RequestRecord, TokenCounts,
};
use tollgate_control_plane::store::memory::MemoryStore;
use tollgate_control_plane::store::{SettleOp, Store};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const RECORDS: usize = 1_000_000;

fn record(i: usize) -> RequestRecord {
    let at = T0_MS - 3_600_000 + i64::try_from(i).unwrap();
    RequestRecord {
        request_id: format!("req-{i:08}"),
        started_at_ms: at - 900,
        ended_at_ms: at,
        recorded_at_ms: 0,
        scopes: vec![format!("team:t{}", i % 50).parse().unwrap()],
        provider: "openai".into(),
        api: Some("chat_completions".into()),
        requested_model: "gpt-4o".into(),
        charged_model: "gpt-4o".into(),
        tokens: TokenCounts {
            uncached_input: 1_000,
            output: 300,
            ..TokenCounts::default()
        },
        cost_nanos: 5_500_000,
        breakdown: None,
        estimated: false,
        outcome: CallOutcome::Allowed,
        deny_reason: None,
        budget_id: None,
        source: RecordSource::Live,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporting_a_million_records_holds_a_page_not_the_export() {
    let store = Arc::new(MemoryStore::with_ledger_limits(LedgerLimits::default()));
    for chunk in (0..RECORDS).collect::<Vec<_>>().chunks(10_000) {
        let ops: Vec<SettleOp> = chunk
            .iter()
            .map(|&i| SettleOp {
                request_id: format!("req-{i:08}"),
                request_tag: "global".into(),
                lines: Vec::new(),
                cost_nanos: 0,
                tokens: 0,
                now_ms: T0_MS - 3_600_000 + i64::try_from(i).unwrap(),
                dedupe_ttl_ms: 1,
                ledger: Some(record(i)),
            })
            .collect();
        store.settle_many(&ops).await.unwrap();
    }
    let app = TestApp::start(store, |_| {}).await;
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let resp = app
        .admin(
            Method::GET,
            "/v1/ledger/records?from=2027-01-15T00:00:00Z&to=2027-01-16T00:00:00Z",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut resp = resp;
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = resp.chunk().await.unwrap() {
        bytes += chunk.len();
        lines += chunk.iter().filter(|&&b| b == b'\n').count();
    }
    let grew = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    println!(
        "exported {lines} lines, {} MB; peak heap above the loaded store: {} KB",
        bytes >> 20,
        grew >> 10
    );
    assert_eq!(lines, RECORDS + 1);
    // The export is ~200 MB; the process holds a page or two of it at a time.
    assert!(bytes > 150 << 20, "{bytes}");
    assert!(grew < 16 << 20, "the export held {grew} bytes at its peak");
    app.stop().await;
}

//! A stand-in for the LLM providers when offline: replays the recorded answers in
//! `tests/fixtures/` (see `mock_provider`). `scripts/up.sh --mock` starts it.
//!
//! `tollgate-mock-provider [--listen 127.0.0.1:18080] [--fixtures DIR]`

use std::net::SocketAddr;
use std::path::PathBuf;

use tollgate_e2e::mock_provider::MockProvider;
use tollgate_e2e::paths;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 18080).into();
    let mut fixtures: PathBuf = paths::fixtures_dir();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = value.parse()?,
            "--fixtures" => fixtures = value.into(),
            other => anyhow::bail!("unknown flag {other} (expected --listen, --fixtures)"),
        }
    }
    let mock = MockProvider::start_on(fixtures.clone(), listen).await?;
    println!(
        "mock provider on http://{} replaying {}",
        mock.addr,
        fixtures.display()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}

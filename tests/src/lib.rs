//! Tollgate's test harness: the real parts, started per test on free ports.
//!
//! - [`gateway_config`] renders `envoy/envoy.template.yaml`, the same template the shipped
//!   `envoy/envoy.yaml` is rendered from.
//! - [`envoy`] runs the Envoy binary from the project's `.venv` (installed by
//!   `scripts/setup.sh`), waits for `/ready`, and keeps its log for failure messages.
//! - [`mock_provider`] replays recorded provider bodies, whole or as paced streams.
//! - [`bench_stack`] runs `redis-server` and the `tollgate` control plane as child processes
//!   and reads their CPU time from `/proc`, for the benches.

pub mod bench_bodies;
pub mod bench_stack;
pub mod envoy;
pub mod gateway_config;
pub mod mock_provider;
pub mod paths;

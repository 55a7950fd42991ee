//! Tollgate's test harness: the real parts, started per test on free ports.
//!
//! - [`gateway_config`] renders `envoy/envoy.template.yaml`, the same template the shipped
//!   `envoy/envoy.yaml` is rendered from.
//! - [`envoy`] runs the Envoy binary from the project's `.venv` (installed by
//!   `scripts/setup.sh`), waits for `/ready`, and keeps its log for failure messages.
//! - [`mock_provider`] replays recorded provider bodies, whole or as paced streams.
//! - [`redis_server`] runs a real `redis-server` (optionally with an fsync-always AOF) that
//!   can be killed and restarted on the same port and data.
//! - [`control_plane`] runs the real control plane in-process, stoppable and restartable on
//!   the same port, and records the settle batches the filter posts.
//! - [`stack`] wires all of them for one end-to-end test; [`charges`] prices what a test
//!   expects to be charged; [`python`] runs the official provider SDKs from the venv.
//! - [`bench_stack`] runs `redis-server` and the `tollgate` control plane as child processes
//!   and reads their CPU time from `/proc`, for the benches.

pub mod bench_bodies;
pub mod bench_stack;
pub mod charges;
pub mod control_plane;
pub mod envoy;
pub mod gateway_config;
pub mod mock_provider;
pub mod paths;
pub mod ports;
pub mod python;
pub mod redis_server;
pub mod stack;

// Runs a wasm32-wasip1 program (a `cargo test` binary) under Node's WASI preview1.
// Used as CARGO_TARGET_WASM32_WASIP1_RUNNER so the `model` tests also run compiled to wasm,
// the way the filter runs them inside Envoy.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import process from 'node:process';

const [, , wasmPath, ...args] = process.argv;
const wasi = new WASI({
  version: 'preview1',
  args: [wasmPath, ...args],
  env: process.env,
  preopens: { '.': process.cwd() },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(wasmPath));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);

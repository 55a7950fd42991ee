// Runs a wasm32-wasip1 program in node's V8: node scripts/run-wasi.mjs FILE.wasm [ARGS...]
import { WASI } from 'node:wasi';
import fs from 'node:fs';

const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: 'preview1', args: [file, ...args], env: {} });
const module = await WebAssembly.compile(fs.readFileSync(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
wasi.start(instance);

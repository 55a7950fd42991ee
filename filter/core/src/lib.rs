//! Tollgate's filter behaviour, independent of proxy-wasm (arrives with the filter-core issue).

//! criterion benchmarks live under `benches/`; this library is empty.

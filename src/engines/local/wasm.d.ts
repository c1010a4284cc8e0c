/** Wrangler bundles `.wasm` imports as compiled modules (Workers cannot compile WebAssembly at run time). */
declare module '*.wasm' {
  const module: WebAssembly.Module;
  export default module;
}

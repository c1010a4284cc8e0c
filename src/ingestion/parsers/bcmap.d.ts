/** pdf.js binary character maps, bundled as Data modules (see the `[[rules]]` in wrangler.toml). */
declare module '*.bcmap' {
  const data: ArrayBuffer;
  export default data;
}

/**
 * The pdf.js character maps (CMaps) bundled into the Worker, imported from pdfjs-dist (a dev
 * dependency pinned to the pdf.js version that unpdf bundles) as Data modules: see `[[rules]]`
 * in wrangler.toml, which `wrangler dev`, deploy and the vitest pool all read.
 *
 * pdf.js needs them for CJK fonts that are not embedded and have no ToUnicode map:
 * `<Registry>-<Ordering>-UCS2` maps their CIDs to Unicode, which is all that Identity-H/V fonts
 * need (Japanese LaTeX output, for one). A font whose encoding is a predefined CMap also needs
 * that CMap, and the one it is based on, whether embedded or not. Bundled: the Unicode (UCS-2)
 * encodings and the Windows code pages (Shift-JIS, GBK, Big5, UHC). Not bundled, as they would
 * add about 600 KiB (gzipped): the UTF-8/16/32 encodings and the older ISO/EUC/Mac ones. A PDF
 * that needs one of those is rejected as unreadable (MISSING_CMAP in pdf.ts), naming the map,
 * rather than indexed without the text in that font.
 */
import japan1Ucs2 from 'pdfjs-dist/cmaps/Adobe-Japan1-UCS2.bcmap';
import gb1Ucs2 from 'pdfjs-dist/cmaps/Adobe-GB1-UCS2.bcmap';
import cns1Ucs2 from 'pdfjs-dist/cmaps/Adobe-CNS1-UCS2.bcmap';
import korea1Ucs2 from 'pdfjs-dist/cmaps/Adobe-Korea1-UCS2.bcmap';
import uniJisUcs2H from 'pdfjs-dist/cmaps/UniJIS-UCS2-H.bcmap';
import uniJisUcs2V from 'pdfjs-dist/cmaps/UniJIS-UCS2-V.bcmap';
import uniJisUcs2HwH from 'pdfjs-dist/cmaps/UniJIS-UCS2-HW-H.bcmap';
import uniJisUcs2HwV from 'pdfjs-dist/cmaps/UniJIS-UCS2-HW-V.bcmap';
import uniJisProUcs2V from 'pdfjs-dist/cmaps/UniJISPro-UCS2-V.bcmap';
import uniJisProUcs2HwV from 'pdfjs-dist/cmaps/UniJISPro-UCS2-HW-V.bcmap';
import uniGbUcs2H from 'pdfjs-dist/cmaps/UniGB-UCS2-H.bcmap';
import uniGbUcs2V from 'pdfjs-dist/cmaps/UniGB-UCS2-V.bcmap';
import uniCnsUcs2H from 'pdfjs-dist/cmaps/UniCNS-UCS2-H.bcmap';
import uniCnsUcs2V from 'pdfjs-dist/cmaps/UniCNS-UCS2-V.bcmap';
import uniKsUcs2H from 'pdfjs-dist/cmaps/UniKS-UCS2-H.bcmap';
import uniKsUcs2V from 'pdfjs-dist/cmaps/UniKS-UCS2-V.bcmap';
import sjis90msH from 'pdfjs-dist/cmaps/90ms-RKSJ-H.bcmap';
import sjis90msV from 'pdfjs-dist/cmaps/90ms-RKSJ-V.bcmap';
import sjis90mspH from 'pdfjs-dist/cmaps/90msp-RKSJ-H.bcmap';
import sjis90mspV from 'pdfjs-dist/cmaps/90msp-RKSJ-V.bcmap';
import gbkEucH from 'pdfjs-dist/cmaps/GBK-EUC-H.bcmap';
import gbkEucV from 'pdfjs-dist/cmaps/GBK-EUC-V.bcmap';
import etenB5H from 'pdfjs-dist/cmaps/ETen-B5-H.bcmap';
import etenmsB5H from 'pdfjs-dist/cmaps/ETenms-B5-H.bcmap';
import etenmsB5V from 'pdfjs-dist/cmaps/ETenms-B5-V.bcmap';
import uhcH from 'pdfjs-dist/cmaps/KSCms-UHC-H.bcmap';
import uhcV from 'pdfjs-dist/cmaps/KSCms-UHC-V.bcmap';
import uhcHwH from 'pdfjs-dist/cmaps/KSCms-UHC-HW-H.bcmap';
import uhcHwV from 'pdfjs-dist/cmaps/KSCms-UHC-HW-V.bcmap';

/**
 * By the file name pdf.js asks for. Each -V map and a few others are based on (`usecmap`)
 * another map, which must be here too: ETenms-B5-H on ETen-B5-H, *-HW-* and UniJISPro-* on
 * UniJIS-UCS2-H, every other X-V on X-H.
 */
const BUNDLED: Readonly<Record<string, ArrayBuffer>> = {
  // CID → Unicode, one per character collection
  'Adobe-Japan1-UCS2.bcmap': japan1Ucs2,
  'Adobe-GB1-UCS2.bcmap': gb1Ucs2,
  'Adobe-CNS1-UCS2.bcmap': cns1Ucs2,
  'Adobe-Korea1-UCS2.bcmap': korea1Ucs2,
  // Unicode (UCS-2) encodings: Japanese, simplified and traditional Chinese, Korean
  'UniJIS-UCS2-H.bcmap': uniJisUcs2H,
  'UniJIS-UCS2-V.bcmap': uniJisUcs2V,
  'UniJIS-UCS2-HW-H.bcmap': uniJisUcs2HwH,
  'UniJIS-UCS2-HW-V.bcmap': uniJisUcs2HwV,
  'UniJISPro-UCS2-V.bcmap': uniJisProUcs2V,
  'UniJISPro-UCS2-HW-V.bcmap': uniJisProUcs2HwV,
  'UniGB-UCS2-H.bcmap': uniGbUcs2H,
  'UniGB-UCS2-V.bcmap': uniGbUcs2V,
  'UniCNS-UCS2-H.bcmap': uniCnsUcs2H,
  'UniCNS-UCS2-V.bcmap': uniCnsUcs2V,
  'UniKS-UCS2-H.bcmap': uniKsUcs2H,
  'UniKS-UCS2-V.bcmap': uniKsUcs2V,
  // Windows code pages: 932 (Shift-JIS), 936 (GBK), 950 (Big5), 949 (UHC)
  '90ms-RKSJ-H.bcmap': sjis90msH,
  '90ms-RKSJ-V.bcmap': sjis90msV,
  '90msp-RKSJ-H.bcmap': sjis90mspH,
  '90msp-RKSJ-V.bcmap': sjis90mspV,
  'GBK-EUC-H.bcmap': gbkEucH,
  'GBK-EUC-V.bcmap': gbkEucV,
  'ETen-B5-H.bcmap': etenB5H,
  'ETenms-B5-H.bcmap': etenmsB5H,
  'ETenms-B5-V.bcmap': etenmsB5V,
  'KSCms-UHC-H.bcmap': uhcH,
  'KSCms-UHC-V.bcmap': uhcV,
  'KSCms-UHC-HW-H.bcmap': uhcHwH,
  'KSCms-UHC-HW-V.bcmap': uhcHwV,
};

/** A CMap that pdf.js asked for and that is not bundled. */
export class MissingCMapError extends Error {
  override readonly name = 'MissingCMapError';
  constructor(readonly filename: string) {
    super(`The pdf.js character map ${filename} is not bundled (see src/ingestion/parsers/cmaps.ts).`);
  }
}

/** The file names of the bundled CMaps. */
export const bundledCMaps = (): string[] => Object.keys(BUNDLED);

/** A bundled CMap for pdf.js, as a copy (pdf.js may transfer the buffer it is given). */
export async function loadBundledCMap(filename: string): Promise<Uint8Array> {
  const data = Object.hasOwn(BUNDLED, filename) ? BUNDLED[filename] : undefined;
  if (!data) throw new MissingCMapError(filename);
  return new Uint8Array(data.slice(0));
}

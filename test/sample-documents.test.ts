import { env } from 'cloudflare:workers';
import { beforeAll, describe, expect, it } from 'vitest';
import { type DocumentView, query, sampleFile, uploadFiles, waitUntilSettled } from './helpers';

/**
 * The acceptance run of a new user: every file of ../shared/data/documents uploaded in
 * one request through the API. Text-bearing files must become ready and be found in the
 * top 3 by a query phrased from their content; unreadable ones must fail with a reason.
 */
const READABLE: Record<string, string> = {
  'docx/mammoth__footnotes.docx': 'a tachyon walks into a bar',
  'docx/python-docx__blk-paras-and-tables.docx': 'Donec semper facilisis metus finibus malesuada',
  'docx/python-docx__par-hlink-frags.docx': 'bookmark referred to by prior link',
  'docx/unstructured__category-level.docx': 'Ishmael wants to sail and see the watery part of the world',
  'docx/unstructured__contains-pictures.docx': 'paragraph text running through the floating picture',
  'docx/unstructured__docx-hdrftr.docx': 'main document',
  'docx/unstructured__docx-tables.docx': 'nested table and table with merged cells',
  'docx/unstructured__eng_spa_mult.docx': 'born free and equal in dignity and rights',
  'docx/unstructured__handbook-1p.docx': 'who appoints and supervises standing trustees',
  'docx/unstructured__page-breaks.docx': 'text on the second page after a hard page break',
  'docx/unstructured__simple.docx': 'my favorite things parrots and hockey',
  'md/OCRmyPDF__README.md': 'add an OCR text layer to scanned PDF files',
  'md/OCRmyPDF__docs_advanced.md': 'unpaper arguments that are safe on almost all files',
  'md/mammoth.js__README.md': 'paragraph style Heading 1 converted to h1 elements',
  'md/pdf.js__README.md': 'Portable Document Format viewer built with HTML5',
  'md/pdfminer.six__README.md': 'extracts the text from a page directly from the sourcecode of the PDF',
  'md/unstructured__README.md': 'open-source components for ingesting and pre-processing images and text documents',
  'md/unstructured__codeblock.md': 'simple HTML example saying Hello World',
  'md/unstructured__eng_spa_mult.md': 'born free and equal in dignity and rights',
  'md/unstructured__simple-table.md': 'juicy apples and bananas price in stock',
  'pdf/pdfjs__tracemonkey.pdf': 'trace-based just-in-time type specialization for dynamic languages',
  'pdf/pdfminer__jo.pdf': 'わたくしといふ現象は',
  'pdf/pdfminer__kampo.pdf': '歩行者は道路を横断してはならない',
  'pdf/pdfminer__naacl06-shinyama.pdf': 'preemptive information extraction without tuning for a new scenario',
  'pdf/pypdf__Seige_of_Vicksburg_Sample_OCR.pdf': 'Johnston is coming with fifty thousand men to the siege of Vicksburg',
  'pdf/sample-files__google-doc-document.pdf': 'beautiful is better than ugly',
  'pdf/sample-files__multicolumn.pdf': 'two-column document with lorem ipsum',
  'pdf/sample-files__pdflatex-4-pages.pdf': 'here is some text without a meaning',
  'pdf/unstructured__copy-protected.pdf': 'LayoutParser toolkit for deep learning based document image analysis',
  'pdf/unstructured__layout-parser-paper-fast.pdf': 'LayoutParser toolkit for deep learning based document image analysis',
  'pdf/unstructured__multi-column-2p.pdf': 'dense passage retrieval for open-domain question answering',
  'txt/ocrmypdf__linn.txt': 'LinnSequencer MIDI sequence recorder for the professional musician',
  'txt/unstructured__UDHR_first_article_all.txt': 'Όλοι οι άνθρωποι γεννιούνται ελεύθεροι',
  'txt/unstructured__book-war-and-peace-1p.txt': 'Genoa and Lucca are now family estates of the Buonapartes',
  'txt/unstructured__eng_spa_mult.txt': 'born free and equal in dignity and rights',
};

const UNREADABLE: Record<string, RegExp> = {
  'docx/mammoth__empty.docx': /no text/i,
  'pdf/ocrmypdf__invalid.pdf': /not a valid PDF|damaged/i,
  'pdf/ocrmypdf__linn.pdf': /OCR/,
  'pdf/pdfjs__tracemonkey__TRUNCATED-first-508157-bytes.pdf': /truncated/i,
  'pdf/pdfminer__aes-256.pdf': /password/i,
  'pdf/sample-files__libreoffice-writer-password.pdf': /password/i,
  'pdf/unstructured__loremipsum-flat.pdf': /OCR/,
  'pdf/unstructured__password.pdf': /password/i,
  'txt/unstructured__empty.txt': /empty/i,
};

const NAMESPACE = 'samples';
const settled = new Map<string, DocumentView>();

beforeAll(async () => {
  const paths = [...Object.keys(READABLE), ...Object.keys(UNREADABLE)];
  const files = await Promise.all(
    paths.map(async (path) => ({ name: path.split('/')[1] as string, bytes: await sampleFile(`documents/${path}`) })),
  );
  const uploaded = await uploadFiles(files, { namespace: NAMESPACE });
  expect(uploaded).toHaveLength(paths.length);
  for (const [i, document] of uploaded.entries()) settled.set(paths[i] as string, await waitUntilSettled(document.id, 120_000));
}, 180_000);

describe('every sample document, uploaded as a user would', () => {
  it.each(Object.entries(READABLE))('%s is ready and found in the top 3', async (path, phrase) => {
    const document = settled.get(path) as DocumentView;
    expect(document, path).toMatchObject({ status: 'ready', error: null });
    expect(document.chunkCount).toBeGreaterThan(0);
    const passages = await query({ query: phrase, namespace: NAMESPACE, topK: 10 });
    const top = [...new Set(passages.map((p) => p.documentId))].slice(0, 3);
    expect(top, `top documents for "${phrase}"`).toContain(document.id);
  });

  it.each(Object.entries(UNREADABLE))('%s fails with a reason', (path, reason) => {
    const document = settled.get(path) as DocumentView;
    expect(document.status).toBe('failed');
    expect(document.error).toMatch(reason);
    expect(document.chunkCount).toBe(0);
  });

  it('covers every file in the sample folder', async () => {
    const listing = (await (await env.TEST_DATA.fetch('http://data/documents')).json()) as string[];
    const documents = listing.filter((path) => /\.(pdf|docx|md|txt)$/.test(path));
    expect(documents.length).toBeGreaterThan(40);
    expect(documents.sort()).toEqual([...Object.keys(READABLE), ...Object.keys(UNREADABLE)].sort());
  });
});

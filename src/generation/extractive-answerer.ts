import type { ChatRequest } from '../domain';
import { terms } from '../text/analyze';
import { NO_ANSWER } from './prompt';

/** Sentences quoted in an answer. */
const MAX_SENTENCES = 3;
/** A sentence longer than this is cut: an answer quotes, it does not reproduce pages. */
const MAX_SENTENCE_CHARS = 400;

/**
 * The offline answerer (CHAT_PROVIDER=extractive): no model, so it quotes. It scores every
 * sentence of the passages by the question's terms it contains (rarer terms across the passages
 * count more), keeps the best few, and cites each with its passage number. It reads the request
 * itself, not a prompt: answer.ts calls it in place of a model.
 */
export class ExtractiveAnswerer {
  /** Yields the answer in pieces; joined, they are the whole answer. */
  async *stream(request: ChatRequest): AsyncIterable<string> {
    const picked = pickSentences(request);
    if (picked.length === 0) {
      yield NO_ANSWER;
      return;
    }
    for (const [i, { sentence, passage }] of picked.entries()) {
      yield `${i > 0 ? ' ' : ''}${sentence} [${passage}]`;
    }
  }
}

interface Candidate {
  sentence: string;
  passage: number;
  order: number;
  score: number;
}

function pickSentences(request: ChatRequest): Candidate[] {
  const questionTerms = new Set(terms(request.question));
  if (questionTerms.size === 0) return [];

  const candidates: Candidate[] = [];
  const documentFrequency = new Map<string, number>();
  request.passages.forEach((passage, p) => {
    for (const term of new Set(terms(passage.text))) documentFrequency.set(term, (documentFrequency.get(term) ?? 0) + 1);
    splitSentences(passage.text).forEach((sentence, s) => {
      candidates.push({ sentence, passage: p + 1, order: p * 10_000 + s, score: 0 });
    });
  });

  const passageCount = request.passages.length;
  for (const candidate of candidates) {
    const matched = new Set(terms(candidate.sentence).filter((term) => questionTerms.has(term)));
    let score = 0;
    for (const term of matched) score += Math.log(1 + passageCount / (documentFrequency.get(term) ?? 1));
    // Earlier passages ranked higher in retrieval: a small nudge, not a veto.
    candidate.score = score / (1 + 0.1 * (candidate.passage - 1));
  }

  const best = candidates
    .filter((c) => c.score > 0)
    .sort((a, b) => b.score - a.score)
    .slice(0, MAX_SENTENCES);
  // Quote in reading order so the answer flows as the sources do.
  return best.sort((a, b) => a.order - b.order);
}

/** Sentences of a passage, whitespace collapsed, overly long ones cut at a word boundary. */
export function splitSentences(text: string): string[] {
  // A paragraph break ends a sentence even without a full stop; Markdown headings are the
  // passage's context, not an answer, so they are never quoted.
  return text
    .split(/\n\s*\n/)
    .flatMap((paragraph) => {
      const lines = paragraph.split('\n').filter((line) => !/^\s*#{1,6}\s/.test(line));
      const flat = lines.join(' ').replace(/\s+/g, ' ').trim();
      return flat ? (flat.match(/[^.!?。！？]+(?:[.!?。！？]+["')\]]*|$)/gu) ?? [flat]) : [];
    })
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => (s.length <= MAX_SENTENCE_CHARS ? s : `${s.slice(0, cutAt(s))} …`));
}

/** The last space before the limit, or the limit itself in text without spaces (CJK). */
function cutAt(sentence: string): number {
  const space = sentence.lastIndexOf(' ', MAX_SENTENCE_CHARS);
  return space > 0 ? space : MAX_SENTENCE_CHARS;
}

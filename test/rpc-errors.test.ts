import { describe, expect, it } from 'vitest';
import { AppError } from '../src/domain/errors';
import { callIndex, KEYWORD_INDEX_ERROR, MISCONFIGURED } from '../src/engines/rpc-errors';

/** Errors from the engines' Durable Objects arrive as plain Errors: callIndex restores their kind. */
const failing = (message: string, props: Record<string, unknown> = {}) => () => Promise.reject(Object.assign(new Error(message), props));

describe('callIndex', () => {
  it("restores a caller's error and a misconfiguration by their prefix", async () => {
    await expect(callIndex(failing(`${KEYWORD_INDEX_ERROR}2 of 3 passages are not staged`))).rejects.toMatchObject({ code: 'bad_request', status: 400 });
    await expect(callIndex(failing(`${MISCONFIGURED}a vector has 8 dimensions`))).rejects.toMatchObject({ code: 'misconfigured', status: 503 });
  });

  it('turns an overloaded or unreachable object into a retryable 503 with Retry-After', async () => {
    const overloaded = await callIndex(failing('Durable Object is overloaded. Too many requests queued.', { overloaded: true, retryable: false })).catch((e) => e);
    expect(overloaded).toBeInstanceOf(AppError);
    expect(overloaded).toMatchObject({ code: 'unavailable', status: 503, retryable: true, retryAfterSeconds: 5 });
    const reset = await callIndex(failing('Network connection lost.', { retryable: true })).catch((e) => e);
    expect(reset).toMatchObject({ code: 'unavailable', status: 503, retryable: true, retryAfterSeconds: 1 });
  });

  it('passes any other error on as it is', async () => {
    const error = await callIndex(failing('something else broke')).catch((e) => e);
    expect(error).not.toBeInstanceOf(AppError);
    expect(error.message).toBe('something else broke');
  });
});

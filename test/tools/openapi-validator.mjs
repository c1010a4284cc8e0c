import { Validator } from '@seriousme/openapi-schema-validator';

/**
 * Runs in Node, beside workerd (a service binding of vitest.config.ts): validates the POSTed
 * OpenAPI document against the OpenAPI 3.1 schema with a real validator. Answers JSON
 * `{ valid, version, errors }`.
 * @param {Request} request
 */
export async function validateOpenApi(request) {
  const validator = new Validator();
  const result = await validator.validate(await request.json());
  return Response.json({ valid: result.valid, version: validator.version, errors: result.errors ?? null });
}

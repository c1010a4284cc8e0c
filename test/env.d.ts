declare namespace Cloudflare {
  interface Env {
    TEST_MIGRATIONS: import('cloudflare:test').D1Migration[];
    /** Serves ../shared/data (see vitest.config.ts). */
    TEST_DATA: Fetcher;
    /** A fake OpenAI API running in Node (test/fakes/openai-server.ts). */
    FAKE_OPENAI: Fetcher;
    /** `promtool check metrics`, run in Node (test/tools/promtool.ts). */
    PROMTOOL: Fetcher;
    /** Validates an OpenAPI document with a real validator, in Node (test/tools/openapi-validator.mjs). */
    OPENAPI_VALIDATOR: Fetcher;
    /** The CI variable of the test run: there promtool must be installed. */
    CI: string;
  }
}
declare namespace Cloudflare {
  interface GlobalProps {
    mainModule: typeof import('../src/index');
  }
}

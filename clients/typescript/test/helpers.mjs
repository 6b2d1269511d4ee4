// Shared by the tests: a client of the live gateway named by CODEBEAKER_URL and
// CODEBEAKER_API_KEY (the Rust driver tests/api/sdk_typescript.rs starts one).
import { CodeBeaker } from "../dist/index.js";

export const URL_ = process.env.CODEBEAKER_URL;
export const KEY = process.env.CODEBEAKER_API_KEY;
/** A key with a rate limit of 1/s and a burst of 1 (for the retry tests). */
export const SLOW_KEY = process.env.CODEBEAKER_SLOW_API_KEY;

if (!URL_ || !KEY) {
  throw new Error("set CODEBEAKER_URL and CODEBEAKER_API_KEY to a live gateway's");
}

/** A client from the environment, as a user's would be. */
export function client(options = {}) {
  return new CodeBeaker(options);
}

/** CodeBeaker's TypeScript client: `new CodeBeaker({url, apiKey})`. */
export { CodeBeaker } from "./client.js";
export type { CallOptions, ClientOptions, WaitOptions } from "./client.js";
export * from "./errors.js";
export { RpcClient, RpcSession } from "./rpc.js";
export { Session, SessionBase, SessionCommandError } from "./session.js";
export type { ShellOptions } from "./session.js";
export * from "./types.js";
export { signWebhook, verifyWebhook } from "./webhooks.js";
export type { VerifyOptions } from "./webhooks.js";

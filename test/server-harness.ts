// The server tests' view of the LSP client in server/session/client.ts (the demo and the bench
// use the same client).
export { ServerClient as TestServer, fileUri, tempStorage, SAMPLE, ROOT, defaultModel as testModel } from '../server/session/client';

// The browser build of `openai` as a Realtime web app bundles it: the client and the browser
// WebSocket class (`openai/realtime/websocket`, which offers the key as the subprotocol entry
// `openai-insecure-api-key.<key>`). Served to tests/browser/realtime_page.html by
// client_secret_realtime.mjs.
export { default as OpenAI } from "openai";
export { OpenAIRealtimeWebSocket } from "openai/realtime/websocket";

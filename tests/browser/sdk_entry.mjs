// The three official SDKs as a browser app would bundle them: esbuild with the "browser"
// platform picks each package's browser build (@google/genai's dist/web, the ESM builds of
// openai and @anthropic-ai/sdk). Served to tests/browser/sdk_page.html by sdk_headers.mjs.
export { default as OpenAI } from "openai";
export { default as Anthropic } from "@anthropic-ai/sdk";
export { GoogleGenAI } from "@google/genai";

// Runs the example storefront: FLASHSALE_URL (default http://127.0.0.1:8080),
// FLASHSALE_STOREFRONT_TOKEN (required), PORT (default 3000).
import { FlashsaleClient } from "@flashsale/client";

import { createStorefront } from "./app.js";

const token = process.env.FLASHSALE_STOREFRONT_TOKEN;
if (!token) {
  console.error("set FLASHSALE_STOREFRONT_TOKEN (flashsale credentials show --only storefront-token)");
  process.exit(2);
}
const client = new FlashsaleClient({
  baseUrl: process.env.FLASHSALE_URL ?? "http://127.0.0.1:8080",
  token,
  onRetry: (r) => console.warn(`retrying ${r.request} in ${r.delayMs} ms after ${r.error.name}`),
});
const port = Number(process.env.PORT ?? 3000);
const server = createStorefront({ client }).listen(port, "127.0.0.1", () => {
  console.log(`storefront listening on http://127.0.0.1:${port}`);
});
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => server.close(() => process.exit(0)));
}

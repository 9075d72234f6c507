// The example storefront's HTML pages: plain server-rendered forms, every value escaped.
import type { Order, Reservation, Sku } from "@flashsale/client";

import type { PricedCart } from "./app.js";

/** HTML-escapes a value. */
export function esc(v: unknown): string {
  return String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Cents as `12.34`. */
export function money(cents: number): string {
  return `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, "0")}`;
}

/** The page frame. */
export function page(title: string, buyer: string | undefined, body: string): string {
  const who = buyer
    ? `signed in as <b>${esc(buyer)}</b> · <a href="/cart">cart</a> · <a href="/orders">my orders</a>
       <form method="post" action="/logout" style="display:inline"><button>sign out</button></form>`
    : `<form method="post" action="/login">buyer id <input name="buyer" required> <button>sign in</button></form>`;
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body><header><a href="/">flashsale storefront</a> · ${who}</header><h1>${esc(title)}</h1>${body}</body></html>`;
}

/** The catalog. */
export function catalogPage(buyer: string | undefined, skus: Sku[]): string {
  const rows = skus
    .map(
      (s) => `<tr><td>${esc(s.name)}</td><td>${money(s.price_cents)}</td><td>${s.available} left</td><td>
        <form method="post" action="/cart/lines"><input type="hidden" name="sku" value="${esc(s.sku)}">
        <input name="qty" type="number" min="1" value="1"> <button ${s.available > 0 ? "" : "disabled"}>add to cart</button></form></td></tr>`,
    )
    .join("");
  return page("Catalog", buyer, `<table>${rows}</table>`);
}

/** The cart. */
export function cartPage(buyer: string, cart: PricedCart): string {
  const rows = cart.lines
    .map((l) => `<tr><td>${esc(l.name)}</td><td>${l.qty}</td><td>${money(l.line_total_cents)}</td></tr>`)
    .join("");
  const checkout = cart.lines.length
    ? `<form method="post" action="/checkout"><button>checkout (holds your items for 10 minutes)</button></form>`
    : "<p>Your cart is empty.</p>";
  return page("Cart", buyer, `<table>${rows}</table><p>Total ${money(cart.total_cents)}</p>${checkout}`);
}

/** The payment page of a held reservation. */
export function paymentPage(buyer: string, r: Reservation): string {
  const left = Math.max(0, Math.round((Date.parse(r.expires_at) - Date.now()) / 1000));
  return page(
    "Payment",
    buyer,
    `<p>Reservation ${esc(r.id)}: ${esc(r.status)}, total ${money(r.total_cents)}.
     Your items are held until ${esc(r.expires_at)} (${Math.floor(left / 60)} min ${left % 60} s left).</p>
     <form method="post" action="/checkout/${esc(r.id)}/pay">card number <input name="card" value="4242 4242 4242 4242">
     <button>pay</button></form>
     <form method="post" action="/checkout/${esc(r.id)}/extend"><button>I need more time</button></form>
     <form method="post" action="/checkout/${esc(r.id)}/cancel"><button>cancel</button></form>`,
  );
}

/** One order. */
export function orderPage(buyer: string, o: Order): string {
  const rows = o.lines
    .map((l) => `<tr><td>${esc(l.sku)}</td><td>${l.qty}</td><td>${money(l.unit_price_cents)}</td></tr>`)
    .join("");
  return page(
    `Order ${o.id}`,
    buyer,
    `<p>Placed ${esc(o.created_at)}, paid (${esc(o.payment_ref)}), total ${money(o.total_cents)}.</p><table>${rows}</table>`,
  );
}

/** "My orders". */
export function ordersPage(buyer: string, orders: Order[], nextCursor: string | null): string {
  const rows = orders
    .map(
      (o) =>
        `<tr><td><a href="/orders/${esc(o.id)}">${esc(o.id)}</a></td><td>${esc(o.created_at)}</td><td>${money(o.total_cents)}</td></tr>`,
    )
    .join("");
  const more = nextCursor ? `<a href="/orders?cursor=${encodeURIComponent(nextCursor)}">older orders</a>` : "";
  return page("My orders", buyer, orders.length ? `<table>${rows}</table>${more}` : `<p>No orders yet.</p>${more}`);
}

/** An error page. */
export function errorPage(buyer: string | undefined, title: string, detail: string): string {
  return page(title, buyer, `<p>${esc(detail)}</p><p><a href="/cart">back to the cart</a></p>`);
}

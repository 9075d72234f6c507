// The sign-in form: exchanges the admin token for the dashboard's session cookie
// (POST /dashboard/session), then loads the dashboard. The token is sent once and never stored.
"use strict";

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("login-error");
  error.textContent = "";
  const token = document.getElementById("token").value.trim();
  try {
    const res = await fetch("/dashboard/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token }),
      credentials: "same-origin",
    });
    if (res.ok) {
      window.location.replace("/dashboard");
      return;
    }
    const problem = await res.json().catch(() => ({}));
    error.textContent = problem.detail || `sign-in failed (HTTP ${res.status})`;
  } catch (e) {
    error.textContent = `cannot reach the server: ${e.message}`;
  }
});

/* The dashboard's "Try a push" page: shows what subscribe.js answered. */
document.addEventListener("campaign-flow:subscribed", (e) => {
  const r = e.detail;
  const out = document.getElementById("result");
  out.textContent = r.subscribed ? "Subscribed as " + r.id + ". Profile page: " + r.profileUrl : "Permission: " + r.permission;
});
document.addEventListener("campaign-flow:error", (e) => {
  document.getElementById("result").textContent = "Could not subscribe: " + e.detail;
});

#pragma once
// The web console (web/console, embedded): GET /console/{path} serves its files, / and
// /console redirect to /console/, which serves index.html.
//
// The files are static and open (the server lists "/console/" as an open prefix); the console
// itself calls the REST API with the bearer token the user logs in with, so serving it grants
// nothing. Every answer carries a strict Content-Security-Policy (same-origin scripts, styles
// and fetches only; no inline code, frames or plugins), nosniff and no-referrer; files are sent
// with `Cache-Control: no-cache` and an ETag, so a browser revalidates and gets 304 after an
// upgrade of the binary changes nothing.

#include "app/http_server.h"

namespace sluice::app {

// The prefix to list as open in HttpServer::set_authenticator.
inline constexpr const char* kConsolePrefix = "/console/";

// The policy sent with every console file.
inline constexpr const char* kConsoleContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

void add_console_routes(HttpServer& server);

}  // namespace sluice::app

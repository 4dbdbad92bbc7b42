"""The firm's status page (`fapiao serve`): companies × months at a glance, the people needed, the files.

    access.py       the access token, the session cookie it buys, CSRF tokens, security headers
    status.py       what each page shows, built from the ledger, the queue and the settings (no HTTP here)
    app.py          the routes: home, a company-month, a file by ledger id, manifests, run again, people needed
    server.py       `StatusServer` and `serve()`, the foreground runner of `fapiao serve`
    threaded.py     uvicorn on a thread with a bounded start and stop (the mock portal's server uses it too)
    screenshots.py  `python -m agent.web.screenshots`: docs/screenshots/status-*.png from a seeded archive
    templates/      Jinja2, autoescaped; static/: plain CSS and a little JS, no build step

Read-only without the token; forms are CSRF-checked; files are served by ledger id from inside the archive only.
"""

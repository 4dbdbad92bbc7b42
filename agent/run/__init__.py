"""How a run is put together, from the outside in:

    context.py   RunContext: what every company run is handed (ledger, archive, verifier, browser, events,
                 settings, politeness gates), opened and closed around a run by `opened_run`
    person.py    PersonRun: one login for a person, then each of their companies in turn (switching between
                 them), the session renewed once for the person when it dies
    company.py   CompanyRun: one company's period listed, downloaded and verified; counts its own summary

agent.firm runs persons side by side (the queue's `archive_person`); agent.job is the one-shot CLI path on
the same pieces.
"""

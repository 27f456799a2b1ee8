"""The ceilings of a salesperson's routing numbers: ``scoring.routing`` refuses past them
(adding or changing a salesperson, from the console, the API and the command line), the
API's schemas state them and ``leadvault sales`` names them in its help.

Apart from ``scoring.routing`` so that the command line can name them without importing
the service: every ``leadvault`` command imports ``scoring.sales_cli`` to register it,
and importing ``scoring.routing`` there added ~110 ms of CPU time to that start.
"""

from __future__ import annotations

# A weight is a share of a team's leads: 100 to 1 is far beyond any real team.
WEIGHT_MAX = 100
# Leads offered a week: more than this is a typo, not a plan.
CAPACITY_MAX = 10_000

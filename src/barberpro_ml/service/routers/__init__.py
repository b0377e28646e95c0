"""One router per area of the service: ``customers`` (profiles, segments, journeys,
customer success), ``analytics`` (business KPIs, growth, competitive position) and ``admin``."""

"""Providers: pricing from causal evidence (price elasticity, revenue at other prices)."""

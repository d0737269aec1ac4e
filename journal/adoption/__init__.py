"""Adoption: sessions other stores wrote (the docs' layout, PraisonAI's files), taken into journal."""

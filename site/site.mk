# The course website (issue 15): `make site` builds build/site/ from the committed lessons' stored
# outputs (nothing is re-executed), with no network. Included by the top-level Makefile.

.PHONY: site

site: $(READY)
	$(PY) site/build_site.py --out build/site

"""Tools for the course's authors and instructors, not imported by any lesson.

* :mod:`dipcourse.authoring.course` — run every lesson headless, collect their claims
  (``python -m dipcourse.authoring.course run --profile quick``; ``make run PROFILE=quick``);
* :mod:`dipcourse.authoring.student` — student versions with the solutions stubbed (``make student``);
* :mod:`dipcourse.authoring.stamp` — the Colab badge and setup cell at the top of each lesson.
"""

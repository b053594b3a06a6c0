"""Packaging for nanomq-twisted.

``packages`` lists ``twisted.plugins`` explicitly so that ``twistd`` discovers
``twisted/plugins/nanomq_plugin.py``; that directory deliberately has no
``__init__.py`` (Twisted's plugin howto).
"""

from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as readme:
    README = readme.read()

setup(
    name="nanomq-twisted",
    version="0.1.0",
    description="A NanoMQ-compatible MQTT 3.1/3.1.1/5.0 broker on Twisted",
    long_description=README,
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(exclude=["tests", "tests.*", "bench", "bench.*"])
    + ["twisted.plugins"],
    # An explicit root makes an editable install a plain .pth entry for this
    # directory instead of setuptools' import-hook finder; Twisted discovers
    # plugins by scanning sys.path for twisted/plugins/, which the finder's
    # virtual path entry would hide ("pip install -e ." must work too).
    package_dir={"": "."},
    package_data={
        "twisted": ["plugins/nanomq_plugin.py"],
        # The web dashboard's files (plain HTML, CSS and ES modules).
        "nanomq_twisted.http.dashboard": ["static/*.*", "static/pages/*.js"],
    },
    include_package_data=True,
    install_requires=[
        "Twisted[tls,websocket]>=24.7,<27",
        "klein>=23.5,<26",
        "pyOpenSSL>=24.0,<27",
        "pyhocon>=0.3.60,<0.4",
        "PyJWT[crypto]>=2.8,<3",
        "psutil>=5.9,<8",
        "aioquic>=1.2,<2",
        "treq>=23.11,<27",
        "prometheus_client>=0.19,<1",
        "wsproto>=1.2,<2",
        "PyMySQL>=1.1,<2",
    ],
    extras_require={
        "test": [
            "paho-mqtt>=2.0,<3",
            "hypothesis>=6.100,<7",
            "cryptography>=42",
            "schemathesis>=4.0,<5",
            "ruff>=0.17,<0.18",
            # Drives Debian's chromium (chromium-driver) in tests/e2e/test_dashboard.py.
            "selenium>=4.20,<5",
        ],
    },
    entry_points={
        "console_scripts": ["nanomq-twisted=nanomq_twisted.__main__:main"],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: System :: Networking",
    ],
)

"""
Authentication and authorisation, the Twisted side.

The rules themselves are pure and live in the core: the password table
(core/auth.py, core/passwd.py) and the ACL file (core/acl.py).  This
package holds what needs I/O or a clock around them:

- ``build.py``: turns ``cfg.auth`` into the core's authenticator and ACL,
  with HTTP auth when configured, and the services that must run with them;
- ``http.py``: NanoMQ's HTTP authentication (``auth_req``, ``super_req``,
  ``acl_req``) as an asynchronous authenticator and ACL;
- ``reload.py``: re-reading the password and ACL files (REST ``/reload``,
  ``SIGHUP``, and the file watch of ``auth.reload_interval``).
"""

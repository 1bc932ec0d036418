# A standard DNS-SD browser (python3-zeroconf), independent of bgrid's code: prints the
# _bgrid._tcp instances it resolves, with their TXT records, as JSON lines.
import json, sys, time
from zeroconf import Zeroconf, ServiceBrowser, IPVersion

TYPE = "_bgrid._tcp.local."
seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
zc = Zeroconf(ip_version=IPVersion.V4Only)
found = {}

class Listener:
    def add_service(self, zc, type_, name):
        info = zc.get_service_info(type_, name, timeout=2000)
        if info is not None:
            found[name] = {
                "name": name,
                "port": info.port,
                "addresses": info.parsed_addresses(),
                "txt": {k.decode(): (v.decode() if v is not None else None) for k, v in info.properties.items()},
            }
    def update_service(self, zc, type_, name):
        self.add_service(zc, type_, name)
    def remove_service(self, zc, type_, name):
        found.pop(name, None)

ServiceBrowser(zc, TYPE, Listener())
time.sleep(seconds)
zc.close()
for v in found.values():
    print(json.dumps(v))

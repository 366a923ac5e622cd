-- Test-only Prosody module: reach listed domains at fixed addresses instead of DNS.
--
--   casper_static_routes = { ["casper.test"] = { "127.0.0.1", 15269 } }
--
-- Loaded globally by the federation tests' private Prosody config (tests/federation);
-- Prosody 0.12 has no built-in static s2s routes, so the SRV resolver is wrapped.
local manual = require "net.resolvers.manual";
local service = require "net.resolvers.service";

local routes = module:get_option("casper_static_routes", {});
local original_new = service.new;

service.new = function (hostname, service_name, protocol, extra)
	local target = routes[hostname];
	if not target then
		return original_new(hostname, service_name, protocol, extra);
	end
	if service_name ~= "xmpp-server" then
		return manual.new({}, protocol, extra); -- no direct TLS (xmpps-server) here
	end
	module:log("debug", "static route for %s: %s:%d", hostname, target[1], target[2]);
	return manual.new({ { protocol .. "4", target[1], target[2], extra } }, protocol, extra);
end

function module.unload()
	service.new = original_new;
end

using System.Management.Automation;
using KtConnect.Engine;
using KtConnect.Engine.Sessions.Forward;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cmdlets;

/// <summary>Maps local ports to a Service's ready pods through the API server's port-forward.</summary>
[Cmdlet(VerbsLifecycle.Start, "KtForward", SupportsShouldProcess = true)]
[OutputType(typeof(KtSession))]
public sealed class StartKtForwardCommand : KtClusterCmdlet
{
    /// <summary>The Service whose pods receive the connections.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ServiceCompleter))]
    [ValidateNotNullOrEmpty]
    public string Service { get; set; } = "";

    /// <summary><c>local[:servicePort]</c> mappings; none means the Service's only port.</summary>
    [Parameter(Position = 1)]
    [ValidateNotNull]
    [ValidatePattern(@"^\d{1,5}(:\d{1,5})?$")]
    public string[] Port { get; set; } = [];

    /// <summary>Seconds one port-forward may take to open before the next ready pod is tried.</summary>
    [Parameter]
    [ValidateRange(1, 600)]
    public int PortForwardTimeout { get; set; } = 10;

    protected override void ProcessRecord()
    {
        ForwardOptions options;
        try
        {
            options = ((ForwardOptions)CommonOptions(new ForwardOptions())) with
            {
                Service = Service,
                Ports = Port.Select(PortMapping.Parse).ToList(),
                PortForwardTimeout = TimeSpan.FromSeconds(PortForwardTimeout),
            };
        }
        catch (KtException e)
        {
            ThrowKtError(e, Service);
            return;
        }
        var ports = Port.Length == 0 ? "its port" : "port(s) " + string.Join(", ", Port);
        if (!ShouldProcess($"Service '{Service}' in namespace '{Namespace ?? "(context default)"}'", $"Forward local {ports} on 127.0.0.1"))
            return;
        // One session per pipeline object: a Service that cannot be forwarded is that object's error, and the next ones go on.
        StartSession((output, ct) => Forwarder.StartAsync(options, output, SessionRegistry.Default, cancellationToken: ct), Service, terminating: false);
    }
}

using System.Management.Automation;
using KtConnect.Engine;
using KtConnect.Engine.Sessions.Exchange;
using KtConnect.Engine.Sessions;

namespace KtConnect.Cmdlets;

/// <summary>Publishes local ports as a new Service in the cluster until the session stops.</summary>
[Cmdlet(VerbsCommon.New, "KtPreview", SupportsShouldProcess = true)]
[OutputType(typeof(KtSession))]
public sealed class NewKtPreviewCommand : KtClusterCmdlet
{
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Name { get; set; } = "";

    /// <summary>Local ports, each optionally followed by the new Service's port: <c>8080</c>, <c>8080:80</c>.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string[] Port { get; set; } = [];

    /// <summary>A LoadBalancer Service instead of ClusterIP (kt-connect's --external).</summary>
    [Parameter]
    public SwitchParameter External { get; set; }

    [Parameter]
    public SwitchParameter SkipPortCheck { get; set; }

    protected override void EndProcessing()
    {
        PreviewOptions options;
        try
        {
            options = ((PreviewOptions)CommonOptions(new PreviewOptions())) with
            {
                Name = Name,
                Ports = ExposedPort.Validate([.. Port.Select(ExposedPort.Parse)]),
                ServiceType = External ? PreviewServiceType.LoadBalancer : PreviewServiceType.ClusterIP,
                SkipPortChecking = SkipPortCheck,
            };
            options.Validate();
        }
        catch (KtException e)
        {
            ThrowKtError(e, Name);
            return;
        }

        var target = $"Service '{Name}' in namespace '{Namespace ?? "(context default)"}'";
        if (!ShouldProcess(target, $"Create a {(External ? "LoadBalancer" : "ClusterIP")} Service and a shadow pod forwarding to local ports {string.Join(", ", Port)}"))
            return;
        StartSession((output, ct) => Previewer.StartAsync(options, output, SessionRegistry.Default, cancellationToken: ct), Name);
        base.EndProcessing();
    }
}

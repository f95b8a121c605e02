// A STAND-IN for NVIDIA's device plugin, built by openi-tasks for clusters without GPUs (the
// testbed): no GPU and no NVML can be reached here. It speaks the kubelet's device-plugin API
// (v1beta1) as the real plugin does: it counts the GPUs that `nvidia-smi` reports (on the testbed,
// a stand-in nvidia-smi that the stand-in container runtime puts into containers asking for
// GPUs), advertises them as nvidia.com/gpu on the socket the real plugin uses, and gives a
// container the ids of the GPUs allocated to it in NVIDIA_VISIBLE_DEVICES.
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

const (
	resourceName = "nvidia.com/gpu"
	socketName   = "nvidia-gpu.sock"
)

type plugin struct {
	pluginapi.UnimplementedDevicePluginServer
	devices []*pluginapi.Device
}

// gpus asks nvidia-smi, as the real plugin asks NVML.
func gpus() ([]*pluginapi.Device, error) {
	out, err := exec.Command("nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader").Output()
	if err != nil {
		return nil, fmt.Errorf("nvidia-smi: %v", err)
	}
	var devices []*pluginapi.Device
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.TrimSpace(line) != "" {
			devices = append(devices, &pluginapi.Device{ID: fmt.Sprintf("stand-in-gpu-%d", len(devices)), Health: pluginapi.Healthy})
		}
	}
	return devices, nil
}

func (p *plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

func (p *plugin) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: p.devices}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (p *plugin) Allocate(_ context.Context, request *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	response := &pluginapi.AllocateResponse{}
	for _, container := range request.ContainerRequests {
		log.Printf("allocating %s", strings.Join(container.DevicesIds, ","))
		response.ContainerResponses = append(response.ContainerResponses, &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{"NVIDIA_VISIBLE_DEVICES": strings.Join(container.DevicesIds, ",")},
		})
	}
	return response, nil
}

func (p *plugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

func register() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+pluginapi.KubeletSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version: pluginapi.Version, Endpoint: socketName, ResourceName: resourceName,
	})
	return err
}

func main() {
	log.SetPrefix("nvidia-device-plugin STAND-IN: ")
	devices, err := gpus()
	if err != nil {
		log.Fatalf("cannot count the GPUs: %v", err) // as the real plugin with --fail-on-init-error
	}
	socket := filepath.Join(pluginapi.DevicePluginPath, socketName)
	_ = os.Remove(socket)
	listener, err := net.Listen("unix", socket)
	if err != nil {
		log.Fatalf("listen on %s: %v", socket, err)
	}
	server := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(server, &plugin{devices: devices})
	go func() { log.Fatal(server.Serve(listener)) }()
	if err := register(); err != nil {
		log.Fatalf("registering with the kubelet: %v", err)
	}
	log.Printf("advertising %d %s", len(devices), resourceName)
	// A kubelet that restarts removes every plugin socket and forgets its plugins: exit, so that
	// the DaemonSet starts this plugin again and it registers anew.
	for {
		time.Sleep(5 * time.Second)
		if _, err := os.Stat(socket); err != nil {
			log.Fatalf("%s is gone (the kubelet restarted): exiting to register again", socket)
		}
	}
}
